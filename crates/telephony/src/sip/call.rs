//! One outbound call over a SIP trunk, as a user agent client (RFC 3261): the INVITE
//! transaction with its retransmissions and digest authentication, then the dialog until
//! either side ends it (BYE), or CANCEL while it rings. Signaling only: the media (RTP) is the
//! agent runtime's, outside this engine; the SDP offer names a port held for it.
//!
//! Each call has a connection of its own to the trunk ([`super::transport`]), so what arrives on
//! it belongs to the call; the trunk sends requests within the dialog (a BYE) to the Contact,
//! which is it. Over TCP nothing is retransmitted: the stream is reliable.

use std::time::Duration;

use domain::call::{CarrierEvent, EndReason, SipDialog};
use domain::ids::CallId;
use domain::voip::SipTrunk;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::digest::Challenge;
use super::message::{Message, Request};
use super::transport::Connection;
use super::{carrier_error, token};
use crate::{CarrierEvents, Dial, DialError};

/// RFC 3261's T1: the first retransmission interval over UDP.
const T1: Duration = Duration::from_millis(500);
/// The longest retransmission interval (T2).
const T2: Duration = Duration::from_secs(4);
/// Stands for "no deadline" while a call rings.
const A_DAY: Duration = Duration::from_secs(24 * 3600);
/// How long a BYE or CANCEL waits for its answer before the call is let go anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(4);
/// What becomes of a call the trunk took or refused, told to whoever placed it.
pub type Accepted = oneshot::Sender<Result<(), DialError>>;

/// What the call says over its connection: requests within the dialog, and answers to the
/// far end's.
impl Connection {
    /// A request within `dialog` (or, before the answer, within the INVITE's would-be dialog).
    fn request(&self, dialog: &SipDialog, method: &'static str, uri: String, branch: &str, cseq: u32) -> Request {
        let to_tag = dialog.remote_tag.as_ref().map(|t| format!(";tag={t}")).unwrap_or_default();
        Request {
            method,
            uri,
            headers: vec![
                ("Via", format!("SIP/2.0/{} {};branch={branch};rport", self.transport(), self.local)),
                ("Max-Forwards", "70".into()),
                ("From", format!("<{}>;tag={}", dialog.local_uri, dialog.local_tag)),
                ("To", format!("<{}>{to_tag}", dialog.remote_uri)),
                ("Call-ID", dialog.call_id.clone()),
                ("CSeq", format!("{cseq} {method}")),
                ("Contact", format!("<sip:switchboard@{};transport={}>", self.local, self.transport().to_lowercase())),
                ("User-Agent", "switchboard".into()),
            ],
            body: String::new(),
        }
    }

    /// Answers what the far end asks within the dialog; says whether it ended the call.
    async fn answer_request(&self, request: &Message) -> bool {
        match request.method() {
            Some("BYE") => {
                self.send(&request.response(200, "OK")).await;
                true
            }
            Some("ACK") => false,
            Some("OPTIONS") => {
                self.send(&request.response(200, "OK")).await;
                false
            }
            // A CANCEL after the answer is too late (RFC 3261 §9.2).
            Some("CANCEL") => {
                self.send(&request.response(481, "Call/Transaction Does Not Exist")).await;
                false
            }
            _ => {
                self.send(&request.response(501, "Not Implemented")).await;
                false
            }
        }
    }

    /// Ends an established dialog from this side and waits (a little) for the far end's answer.
    async fn bye(&self, dialog: &mut SipDialog) {
        dialog.local_cseq += 1;
        let cseq = dialog.local_cseq;
        let bye = self.request(dialog, "BYE", dialog.remote_target.clone(), &branch(), cseq).to_bytes();
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut interval = if self.reliable() { CLOSE_TIMEOUT } else { T1 };
        loop {
            self.send(&bye).await;
            match self.receive((Instant::now() + interval).min(deadline)).await {
                Ok(Some(m)) if m.cseq().is_some_and(|(n, method)| n == cseq && method == "BYE") => return,
                Ok(Some(m)) if m.method().is_some() => {
                    self.answer_request(&m).await;
                }
                Ok(_) if Instant::now() < deadline => interval = (interval * 2).min(T2),
                _ => return,
            }
        }
    }
}

fn branch() -> String {
    format!("z9hG4bK{}", token(16))
}

/// Ends the dialog of a call this process did not place (its owner restarted): a BYE from a
/// new socket, which the trunk matches by Call-ID and tags.
pub async fn end_dialog(trunk: &SipTrunk, egress: egress::Policy, mut dialog: SipDialog) {
    match Connection::open(trunk, egress).await {
        Ok(connection) => connection.bye(&mut dialog).await,
        Err(e) => tracing::warn!(call_id = %dialog.call_id, detail = %e.detail, "could not end a sip dialog"),
    }
}

/// The call's INVITE transaction, and its dialog once the far end answers.
struct Leg {
    connection: Connection,
    /// Keeps the media port reserved for the call's life; nothing is read from it here.
    _media: UdpSocket,
    media_port: u16,
    trunk: SipTrunk,
    /// Before the answer, the dialog the INVITE proposes (no remote tag, the trunk as target).
    dialog: SipDialog,
    /// The branch of the INVITE in flight, which its ACK for a failure and its CANCEL reuse.
    invite_branch: String,
    /// The Authorization header the last INVITE carried, if the trunk asked for one.
    authorization: Option<(&'static str, String)>,
}

/// What an INVITE's final failure means for the call.
fn failure_reason(status: u16) -> Option<EndReason> {
    match status {
        486 | 600 | 603 => Some(EndReason::Busy),
        408 | 480 => Some(EndReason::NoAnswer),
        404 | 484 | 485 | 604 => Some(EndReason::InvalidNumber),
        // Everything else is the trunk's failure, not the callee's answer.
        _ => None,
    }
}

impl Leg {
    async fn open(dial: &Dial, trunk: SipTrunk, egress: egress::Policy) -> Result<Self, DialError> {
        let connection = Connection::open(&trunk, egress).await?;
        let unreachable = |e: std::io::Error| carrier_error(format!("Cannot hold a media port: {e}"), None);
        let media = UdpSocket::bind((connection.local.ip(), 0)).await.map_err(unreachable)?;
        let media_port = media.local_addr().map_err(unreachable)?.port();
        let request_uri = format!("sip:{}@{}:{}", dial.to, trunk.host, trunk.port);
        let dialog = SipDialog {
            call_id: format!("{}@switchboard", token(20)),
            local_uri: format!("sip:{}@{}", dial.from, trunk.host),
            local_tag: token(10),
            remote_uri: request_uri.clone(),
            remote_tag: None,
            remote_target: request_uri,
            local_cseq: 0,
        };
        Ok(Self {
            connection,
            _media: media,
            media_port,
            trunk,
            dialog,
            invite_branch: String::new(),
            authorization: None,
        })
    }

    fn request(&self, method: &'static str, branch: &str) -> Request {
        let uri = if method == "ACK" && self.dialog.remote_tag.is_some() {
            self.dialog.remote_target.clone()
        } else {
            self.dialog.remote_uri.clone()
        };
        self.connection.request(&self.dialog, method, uri, branch, self.dialog.local_cseq)
    }

    fn invite(&mut self) -> Vec<u8> {
        self.dialog.local_cseq += 1;
        self.invite_branch = branch();
        let mut invite = self.request("INVITE", &self.invite_branch);
        if let Some((name, value)) = &self.authorization {
            invite.headers.push((name, value.clone()));
        }
        invite.headers.push(("Content-Type", "application/sdp".into()));
        let ip = self.connection.local.ip();
        let session = self.dialog.local_cseq;
        invite.body = format!(
            "v=0\r\no=switchboard {session} {session} IN IP4 {ip}\r\ns=switchboard\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n",
            self.media_port
        );
        invite.to_bytes()
    }

    /// The ACK of a 2xx is a transaction of its own, sent to the far end's Contact.
    fn ack_success(&self) -> Vec<u8> {
        self.request("ACK", &branch()).to_bytes()
    }

    /// The ACK of a failure belongs to the INVITE's transaction: same branch, the failure's To tag.
    fn ack_failure(&self, response: &Message) -> Vec<u8> {
        let mut ack = self.request("ACK", &self.invite_branch);
        if let (Some(tag), Some(to)) = (response.to_tag(), ack.headers.iter_mut().find(|(n, _)| *n == "To")) {
            to.1 = format!("<{}>;tag={tag}", self.dialog.remote_uri);
        }
        ack.to_bytes()
    }

    /// A CANCEL matches the INVITE it cancels: same Request-URI, branch, Call-ID, From, To (no
    /// tag) and CSeq number.
    fn cancel(&self) -> Vec<u8> {
        self.request("CANCEL", &self.invite_branch).to_bytes()
    }
}

/// Places the call and follows it to its end. `accepted` learns first whether the trunk took
/// the call; `events` then hears how it goes; `hang_up` asks for the end from this side.
pub async fn run(
    dial: Dial,
    trunk: SipTrunk,
    egress: egress::Policy,
    answer_timeout: Duration,
    accepted: Accepted,
    events: CarrierEvents,
    hang_up: mpsc::Receiver<()>,
) {
    let leg = match Leg::open(&dial, trunk, egress).await {
        Ok(leg) => leg,
        Err(e) => {
            let _ = accepted.send(Err(e));
            return;
        }
    };
    let mut call = Call { id: dial.call_id, leg, accepted: Some(accepted), events, hang_up };
    match call.invite(answer_timeout).await {
        Invited::Answered => {
            call.report(CarrierEvent::Answered { sip_dialog: Some(call.leg.dialog.clone()) }).await;
            call.talk().await;
        }
        // Answered just as it was canceled: the call is up, so it is ended with a BYE.
        Invited::AnsweredWhenCanceled => call.leg.connection.bye(&mut call.leg.dialog).await,
        Invited::Over => {}
    }
}

/// How an INVITE transaction ended.
enum Invited {
    Answered,
    AnsweredWhenCanceled,
    /// Refused, canceled, or given up on; whoever needed to know was told.
    Over,
}

/// A call under way, and who hears of it.
struct Call {
    id: CallId,
    leg: Leg,
    /// Whoever placed the call, until they know whether the trunk took it.
    accepted: Option<Accepted>,
    events: CarrierEvents,
    hang_up: mpsc::Receiver<()>,
}

impl Call {
    async fn report(&self, event: CarrierEvent) {
        // The owner is gone only at shutdown; no one is left to tell.
        let _ = self.events.send((self.id, event)).await;
    }

    /// Tells whoever placed the call that the trunk took it (once).
    fn accept(&mut self) {
        if let Some(tx) = self.accepted.take() {
            let _ = tx.send(Ok(()));
        }
    }

    /// The carrier's failure: the placement fails (a 502) if the trunk never took the call;
    /// otherwise the call ends for `reason`.
    async fn fail(&mut self, reason: EndReason, sip_code: Option<u16>, detail: String) {
        match self.accepted.take() {
            Some(tx) => {
                let _ = tx.send(Err(carrier_error(detail, sip_code)));
            }
            None => self.report(CarrierEvent::Ended { reason, sip_code }).await,
        }
    }

    /// The INVITE transaction: retransmitted (over UDP) until something answers, for at most
    /// `answer_timeout` until the first answer; a challenge answered once; ringing reported;
    /// a hang-up meanwhile turned into a CANCEL.
    async fn invite(&mut self, answer_timeout: Duration) -> Invited {
        let mut invite = self.leg.invite();
        let mut authenticated = false;
        let mut provisional = false;
        let mut rang = false;
        let mut canceled = false;
        let mut deadline = Instant::now() + answer_timeout;
        let mut interval = T1;
        let mut retransmit_at = Instant::now() + interval;
        self.leg.connection.send(&invite).await;
        loop {
            let wake =
                if provisional || self.leg.connection.reliable() { deadline } else { retransmit_at.min(deadline) };
            let message = tokio::select! {
                received = self.leg.connection.receive(wake) => received,
                Some(()) = self.hang_up.recv(), if !canceled => {
                    // The engine ended the call while it rang: cancel the INVITE, then wait for
                    // its end. Before anything answered it, a CANCEL has nothing to match: it
                    // goes with the first answer.
                    canceled = true;
                    if provisional {
                        self.leg.connection.send(&self.leg.cancel()).await;
                        deadline = Instant::now() + CLOSE_TIMEOUT;
                    }
                    continue;
                }
            };
            let message = match message {
                Err(e) => {
                    let trunk = &self.leg.trunk;
                    let detail = format!("The SIP trunk {}:{} is unreachable: {e}", trunk.host, trunk.port);
                    self.fail(EndReason::CarrierError, None, detail).await;
                    return Invited::Over;
                }
                Ok(None) if Instant::now() >= deadline => {
                    if !canceled {
                        let seconds = answer_timeout.as_secs_f64();
                        let detail = format!("No answer from the SIP trunk within {seconds} s.");
                        self.fail(EndReason::NoAnswer, Some(408), detail).await;
                    }
                    return Invited::Over;
                }
                Ok(None) => {
                    self.leg.connection.send(&invite).await;
                    interval = (interval * 2).min(T2);
                    retransmit_at = Instant::now() + interval;
                    continue;
                }
                Ok(Some(message)) => message,
            };
            let Some(status) = message.status() else {
                // A request before the answer (an OPTIONS, say): answer it and go on.
                self.leg.connection.answer_request(&message).await;
                continue;
            };
            match message.cseq() {
                Some((n, "INVITE")) if n == self.leg.dialog.local_cseq => {}
                // Answers to a CANCEL, or to an INVITE we replaced, are of no more use.
                _ => continue,
            }
            match status {
                100..=199 => {
                    if canceled && !provisional {
                        // Canceled before anything answered: now a CANCEL can match.
                        self.leg.connection.send(&self.leg.cancel()).await;
                        deadline = Instant::now() + CLOSE_TIMEOUT;
                    } else if !canceled {
                        deadline = Instant::now() + A_DAY;
                    }
                    provisional = true;
                    self.accept();
                    if (180..=183).contains(&status) && !rang {
                        rang = true;
                        self.report(CarrierEvent::Ringing).await;
                    }
                }
                200..=299 => {
                    self.leg.dialog.remote_tag = message.to_tag().map(str::to_owned);
                    if let Some(contact) = message.contact_uri() {
                        self.leg.dialog.remote_target = contact.to_owned();
                    }
                    self.leg.connection.send(&self.leg.ack_success()).await;
                    self.accept();
                    return if canceled { Invited::AnsweredWhenCanceled } else { Invited::Answered };
                }
                401 | 407 if !authenticated => {
                    self.leg.connection.send(&self.leg.ack_failure(&message)).await;
                    let (challenge, answer) = if status == 401 {
                        ("www-authenticate", "Authorization")
                    } else {
                        ("proxy-authenticate", "Proxy-Authorization")
                    };
                    let Some(challenge) = message.header(challenge).and_then(Challenge::parse) else {
                        let detail =
                            format!("The SIP trunk asked for credentials it did not say how to give ({status}).");
                        self.fail(EndReason::CarrierError, Some(status), detail).await;
                        return Invited::Over;
                    };
                    authenticated = true;
                    let (trunk, uri) = (&self.leg.trunk, &self.leg.dialog.remote_uri);
                    let value = challenge.answer(&trunk.username, trunk.password.expose(), "INVITE", uri, &token(12));
                    self.leg.authorization = Some((answer, value));
                    invite = self.leg.invite();
                    self.leg.connection.send(&invite).await;
                    provisional = false;
                    interval = T1;
                    retransmit_at = Instant::now() + interval;
                    deadline = Instant::now() + answer_timeout;
                }
                _ => {
                    self.leg.connection.send(&self.leg.ack_failure(&message)).await;
                    if canceled {
                        return Invited::Over;
                    }
                    match failure_reason(status) {
                        // The callee's answer: the call was placed, and ends.
                        Some(reason) => {
                            self.accept();
                            self.report(CarrierEvent::Ended { reason, sip_code: Some(status) }).await;
                        }
                        None => {
                            let detail = match status {
                                401 | 403 | 407 => {
                                    format!("The SIP trunk refused the connection's credentials ({status}).")
                                }
                                _ => format!("The SIP trunk refused the call ({status})."),
                            };
                            self.fail(EndReason::CarrierError, Some(status), detail).await;
                        }
                    }
                    return Invited::Over;
                }
            }
        }
    }

    /// The dialog, until one side ends it.
    async fn talk(&mut self) {
        loop {
            let received = tokio::select! {
                received = self.leg.connection.receive(Instant::now() + A_DAY) => received,
                hung_up = self.hang_up.recv() => {
                    if hung_up.is_some() {
                        self.leg.connection.bye(&mut self.leg.dialog).await;
                    }
                    return;
                }
            };
            match received {
                Ok(Some(message)) if message.method().is_some() => {
                    if self.leg.connection.answer_request(&message).await {
                        self.report(CarrierEvent::Ended { reason: EndReason::CalleeHangup, sip_code: Some(200) }).await;
                        return;
                    }
                }
                Ok(Some(message)) => {
                    let invite_ok = message.status().is_some_and(|s| (200..300).contains(&s))
                        && message.cseq().is_some_and(|(n, m)| n == self.leg.dialog.local_cseq && m == "INVITE");
                    if invite_ok {
                        // The 200 again: our ACK was lost.
                        self.leg.connection.send(&self.leg.ack_success()).await;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(call = %self.id, error = %e, "the sip trunk became unreachable");
                    self.report(CarrierEvent::Ended { reason: EndReason::CarrierError, sip_code: None }).await;
                    return;
                }
            }
        }
    }
}
