//! The account API end to end: the real binary, real HTTP, real sled files.

use serde_json::{Value, json};
mod calls;
mod control_plane;
mod hardening;
mod names;
mod network_guard;
mod official_client;
mod quotas;
mod secrets;
mod sip;
mod test_calls;

use switchboard_tests::{ADMIN_TOKEN, Body, Server, bearer};

pub fn is_timestamp(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    // 2026-04-20T18:24:10.113Z
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[19] == b'.' && s.as_bytes()[10] == b'T'
}

#[tokio::test]
async fn healthz_answers_without_credentials() {
    let server = Server::start();
    let r = server.call("GET", "/v1/healthz", None, None).await;
    assert_eq!((r.status, r.body), (200, json!({ "ok": true })));
}

#[tokio::test]
async fn bad_credentials_are_refused_with_401_and_a_reason() {
    let server = Server::start();
    let org = server.create_org("Acme").await;

    let missing = server.call("GET", "/v1/agents", None, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["code"], "not_authenticated");
    assert!(missing.headers.contains_key("www-authenticate"));

    for auth in ["Bearer", "Bearer not-a-key", "Basic dXNlcjpwYXNz", "sk_live_nothing"] {
        let r = server.call("GET", "/v1/agents", Some(auth), None).await;
        assert_eq!(r.status, 401, "{auth}: {}", r.body);
        assert!(r.body["detail"].is_string() && r.body["code"].is_string(), "{}", r.body);
    }

    // A key of the right shape that does not exist, and a real key id with a wrong secret.
    let forged = format!("{}{}", &org.key[..24], "A".repeat(32));
    for key in ["sk_live_00000000000009990123456789abcdefghijABCDEFGHIJKL", forged.as_str()] {
        let r = server.get("/v1/agents", key).await;
        assert_eq!((r.status, r.body["detail"].as_str()), (401, Some("Invalid API key.")), "{key}");
    }

    let publishable = server.get("/v1/agents", &org.key.replace("sk_live_", "pk_live_")).await;
    assert_eq!(publishable.status, 401);
    assert!(publishable.body["detail"].as_str().unwrap().contains("Publishable keys"), "{}", publishable.body);

    let dashboard = server.call("GET", "/v1/agents", Some("Token abc"), None).await;
    assert_eq!(dashboard.status, 401);

    // Credentials are checked before the body: a bad key with a bad body is still a 401.
    let r = server.post("/v1/agents", "sk_live_bogus", json!({ "voice": 3 })).await;
    assert_eq!(r.status, 401);

    // The admin token is not an API key and an API key is not the admin token.
    assert_eq!(server.get("/v1/agents", ADMIN_TOKEN).await.status, 401);
    assert_eq!(server.post("/admin/v1/orgs", &org.key, json!({ "name": "x" })).await.status, 401);
}

#[tokio::test]
async fn admin_creates_orgs_and_keys() {
    let server = Server::start();
    let org = server.post("/admin/v1/orgs", ADMIN_TOKEN, json!({ "name": "Acme" })).await.expect(201);
    let id = org["id"].as_u64().unwrap();
    assert_eq!(org["name"], "Acme");
    assert_eq!(org["trial"], false);
    assert!(is_timestamp(&org["created_at"]) && is_timestamp(&org["updated_at"]), "{org}");

    assert_eq!(server.get(&format!("/admin/v1/orgs/{id}"), ADMIN_TOKEN).await.expect(200), org);
    server.get("/admin/v1/orgs/999", ADMIN_TOKEN).await.expect(404);
    server.post("/admin/v1/orgs/999/keys", ADMIN_TOKEN, json!({ "name": "k" })).await.expect(404);
    let r = server.post("/admin/v1/orgs", ADMIN_TOKEN, json!({})).await.expect(400);
    assert_eq!(r, json!({ "name": ["This field is required."] }));
    let r = server.post("/admin/v1/orgs", "wrong", json!({ "name": "x" })).await.expect(401);
    assert_eq!(r["code"], "authentication_failed");

    let key = server.post(&format!("/admin/v1/orgs/{id}/keys"), ADMIN_TOKEN, json!({ "name": "ci" })).await.expect(201);
    let raw = key["key"].as_str().unwrap();
    assert!(raw.starts_with("sk_live_"));
    assert_eq!(key["name"], "ci");
    assert!(key["id"].is_u64() && is_timestamp(&key["created_at"]));
    server.get("/v1/agents", raw).await.expect(200);

    let trial = server.patch(&format!("/admin/v1/orgs/{id}"), ADMIN_TOKEN, json!({ "trial": true })).await.expect(200);
    assert_eq!(trial["trial"], true);
    server.patch(&format!("/admin/v1/orgs/{id}"), ADMIN_TOKEN, json!({ "trial": "yes" })).await.expect(400);
}

#[tokio::test]
async fn keys_are_listed_without_secrets_and_revoked_at_once() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let other = server.create_org("Other").await;

    let created = server.post("/v1/keys", &org.key, json!({ "name": "deploy" })).await.expect(201);
    let second = created["key"].as_str().unwrap().to_owned();
    server.get("/v1/agents", &second).await.expect(200);

    let list = server.get("/v1/keys", &org.key).await.expect(200);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for k in list {
        assert!(k.get("key").is_none() && k.get("secret_hash").is_none(), "{k}");
        assert!(k["key_prefix"].as_str().unwrap().starts_with("sk_live_"));
    }
    assert!(!list.iter().any(|k| k.to_string().contains(&second[24..])), "the secret leaked");

    let id = created["id"].as_u64().unwrap();
    server.delete(&format!("/v1/keys/{id}"), &other.key).await.expect(404);
    server.delete(&format!("/v1/keys/{id}"), &org.key).await.expect(204);
    let refused = server.get("/v1/agents", &second).await.expect(401);
    assert_eq!(refused["detail"], "This API key has been revoked.");
    server.delete(&format!("/v1/keys/{id}"), &org.key).await.expect(404);
    assert_eq!(server.get("/v1/keys", &org.key).await.expect(200).as_array().unwrap().len(), 1);
    server.post("/v1/keys", &org.key, json!({ "name": "" })).await.expect(400);
}

#[tokio::test]
async fn agents_are_created_read_updated_and_deleted() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let body = json!({
        "name": "Support",
        "prompt": "You help customers.",
        "voice": "coral",
        "greeting": "Hello!",
        "max_hold_seconds": 90,
        "tools": [{ "name": "lookup_order", "description": "Finds an order", "url": "https://example.com/hook",
                    "parameters": { "type": "object", "properties": { "id": { "type": "string" } } } }]
    });
    let agent = server.post("/v1/agents", &org.key, body.clone()).await.expect(201);
    let id = agent["id"].as_u64().unwrap();
    for field in ["name", "prompt", "voice", "greeting", "max_hold_seconds", "tools"] {
        assert_eq!(agent[field], body[field], "{field}");
    }
    assert!(is_timestamp(&agent["created_at"]) && agent["created_at"] == agent["updated_at"]);

    assert_eq!(server.get(&format!("/v1/agents/{id}"), &org.key).await.expect(200), agent);
    assert_eq!(server.get("/v1/agents", &org.key).await.expect(200), json!([agent]));

    let patched = server.patch(&format!("/v1/agents/{id}"), &org.key, json!({ "voice": "sage" })).await.expect(200);
    assert_eq!(patched["voice"], "sage");
    assert_eq!(patched["prompt"], "You help customers.");
    assert_eq!(patched["created_at"], agent["created_at"]);

    // PUT replaces: what it leaves out returns to its default (name, prompt and voice it must give).
    let replaced = server
        .put(&format!("/v1/agents/{id}"), &org.key, json!({ "name": "Sales", "prompt": "", "voice": "alloy" }))
        .await
        .expect(200);
    assert_eq!(
        (&replaced["name"], &replaced["prompt"], &replaced["voice"], &replaced["max_hold_seconds"], &replaced["tools"]),
        (&json!("Sales"), &json!(""), &json!("alloy"), &json!(60), &json!([]))
    );
    server.put(&format!("/v1/agents/{id}"), &org.key, json!({ "voice": "sage" })).await.expect(400);

    server.delete(&format!("/v1/agents/{id}"), &org.key).await.expect(204);
    server.get(&format!("/v1/agents/{id}"), &org.key).await.expect(404);
    server.delete(&format!("/v1/agents/{id}"), &org.key).await.expect(404);
    assert_eq!(server.get("/v1/agents", &org.key).await.expect(200), json!([]));
}

/// The contract's `Agent`: every key the official client requires, the runtime settings stored
/// and read back, drafts accepted and not kept, and `if_updated_at` refusing a stale write.
#[tokio::test]
async fn agents_carry_the_contracts_settings_and_refuse_a_stale_write() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let k = &org.key;
    let body = json!({
        "name": "Support", "prompt": "You help.", "voice": "coral",
        "voicemail_action": "message", "voicemail_message": "Call {org_name} back.",
        "silence_checkins_enabled": false, "silence_hangup_seconds": 45,
        "inbound_speak_order": "caller_first", "outbound_speak_order": "agent_first",
        "transfer_destinations": [{ "name": "Billing", "number": "4155550100" }, { "name": "Owner", "number": "{{owner}}" }],
        "primary_language": "en", "additional_languages": ["es", "pt-BR"], "timezone": "America/New_York",
        "max_call_duration_seconds": 1200, "ring_duration_seconds": null, "background_track": "office",
        "thinking_level": "extra", "product": "storm-base", "acknowledgement_feedback_mode": "tick",
        "steps": [{ "name": "greet", "prompt": "Say hello." }], "business_hours": { "mon": ["09:00", "17:00"] },
        "play_sound_asset": "", "report_instructions": "Summarize.", "phi_processing_override": "no_phi",
        "draft_prompt": "Unsaved idea.", "draft_thinking_level": "", "draft_voicemail_action": null
    });
    let agent = server.post("/v1/agents", k, body.clone()).await.expect(201);
    for field in [
        "voicemail_action",
        "voicemail_message",
        "silence_checkins_enabled",
        "silence_hangup_seconds",
        "inbound_speak_order",
        "outbound_speak_order",
        "primary_language",
        "additional_languages",
        "timezone",
        "max_call_duration_seconds",
        "ring_duration_seconds",
        "background_track",
        "thinking_level",
        "product",
        "acknowledgement_feedback_mode",
        "steps",
        "business_hours",
        "play_sound_asset",
        "report_instructions",
        "phi_processing_override",
    ] {
        assert_eq!(agent[field], body[field], "{field}");
    }
    assert_eq!(
        agent["transfer_destinations"],
        json!([{ "name": "Billing", "number": "+14155550100", "platform_ok": null },
               { "name": "Owner", "number": "{{owner}}", "platform_ok": null }])
    );
    // Defaults, and the neutral values of what the engine does not do.
    assert_eq!((&agent["silence_max_checkins"], &agent["watchdog_enabled"]), (&json!(2), &json!(false)));
    for (field, neutral) in [
        ("has_draft", json!(false)),
        ("draft_updated_at", json!(null)),
        ("draft_steps", json!(null)),
        ("draft_additional_languages", json!([])),
        ("integrations", json!([])),
        ("knowledge_bases", json!([])),
        ("mcp_servers", json!([])),
        ("tool_collision_warnings", json!([])),
        ("consent_disabled_reason", json!("")),
    ] {
        assert_eq!(agent[field], neutral, "{field}");
    }
    assert!(agent.get("draft_prompt").is_none() && agent.get("bolt_pipeline").is_none(), "{agent}");
    let path = format!("/v1/agents/{}", agent["id"]);
    assert_eq!(server.get(&path, k).await.expect(200), agent);

    // A write made on what was read goes through; one made on an older read is refused.
    let read_at = agent["updated_at"].clone();
    let patched = server
        .patch(&path, k, json!({ "silence_max_checkins": 5, "ring_duration_seconds": 20, "if_updated_at": read_at }))
        .await
        .expect(200);
    assert_eq!((&patched["silence_max_checkins"], &patched["ring_duration_seconds"]), (&json!(5), &json!(20)));
    assert_eq!(patched["thinking_level"], "extra", "a patch leaves the rest");
    let stale = server.patch(&path, k, json!({ "name": "Late", "if_updated_at": read_at })).await.expect(409);
    assert_eq!(stale["code"], "agent_changed", "{stale}");
    let put = json!({ "name": "Sales", "prompt": "Sell.", "voice": "sage", "if_updated_at": read_at });
    server.put(&path, k, put).await.expect(409);
    assert_eq!(server.get(&path, k).await.expect(200), patched);

    // Types and choices are checked field by field; the inline config's wider choices are not an agent's.
    let r = server
        .patch(
            &path,
            k,
            json!({ "thinking_level": "minimal", "silence_max_checkins": 99, "voicemail_action": 3,
                    "additional_languages": ["english"], "transfer_destinations": [{ "name": "x" }],
                    "steps": "x".repeat(20_000), "draft_product": "turbo", "bolt_pipeline": "v1",
                    "if_updated_at": "yesterday" }),
        )
        .await
        .expect(400);
    assert_eq!(r["thinking_level"], json!(["\"minimal\" is not a valid choice."]));
    assert_eq!(r["silence_max_checkins"], json!(["Ensure this value is less than or equal to 20."]));
    assert_eq!(r["voicemail_action"], json!(["Not a valid string."]));
    assert!(r["additional_languages"][0].as_str().unwrap().contains("not a valid language"), "{r}");
    assert_eq!(r["transfer_destinations.0.number"], json!(["This field is required."]));
    assert!(r["steps"][0].as_str().unwrap().contains("bytes"), "{r}");
    assert_eq!(r["draft_product"], json!(["\"turbo\" is not a valid choice."]));
    assert_eq!(r["bolt_pipeline"], json!(["Unknown field."]));
    assert!(r["if_updated_at"].is_array(), "{r}");
    let r = server.post("/v1/agents", k, json!({ "name": "A" })).await.expect(400);
    assert_eq!(r, json!({ "prompt": ["This field is required."], "voice": ["This field is required."] }));
}

#[tokio::test]
async fn agent_bodies_are_validated_field_by_field() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let k = &org.key;

    let r = server.post("/v1/agents", k, json!({ "name": "A", "prompt": "", "voice": "foo" })).await.expect(400);
    assert_eq!(r, json!({ "voice": ["\"foo\" is not a supported voice id."] }));
    let r = server.post("/v1/agents", k, json!({ "voice": "alloy" })).await.expect(400);
    assert_eq!(r, json!({ "name": ["This field is required."], "prompt": ["This field is required."] }));
    let r = server
        .post("/v1/agents", k, json!({ "name": "A", "prompt": "", "voice": "alloy", "colour": "red" }))
        .await
        .expect(400);
    assert_eq!(r, json!({ "colour": ["Unknown field."] }));

    let r = server
        .post("/v1/agents", k, json!({ "name": 5, "max_hold_seconds": "long", "tools": "none", "greeting": null }))
        .await
        .expect(400);
    assert_eq!(r["name"], json!(["Not a valid string."]));
    assert_eq!(r["max_hold_seconds"], json!(["A valid integer is required."]));
    assert!(r["tools"][0].as_str().unwrap().starts_with("Expected a list"));
    assert_eq!(r["greeting"], json!(["This field may not be null."]));

    for (hold, ok) in [(-1, false), (0, true), (3600, true), (3601, false)] {
        let r = server
            .post("/v1/agents", k, json!({ "name": "A", "prompt": "", "voice": "alloy", "max_hold_seconds": hold }))
            .await;
        assert_eq!(r.status == 201, ok, "max_hold_seconds {hold}: {}", r.body);
    }
    let r = server.post("/v1/agents", k, json!({ "name": "   ", "prompt": "", "voice": "alloy" })).await.expect(400);
    assert_eq!(r, json!({ "name": ["This field may not be blank."] }));
    let r = server
        .post("/v1/agents", k, json!({ "name": "x".repeat(101), "prompt": "", "voice": "alloy" }))
        .await
        .expect(400);
    assert!(r["name"][0].as_str().unwrap().contains("no more than 100"));

    let r = server
        .post(
            "/v1/agents",
            k,
            json!({ "name": "A", "prompt": "", "voice": "alloy", "tools": [{ "name": "bad name!" }, { "name": "ok", "url": "ftp://x" }, 7] }),
        )
        .await
        .expect(400);
    assert!(r.get("tools.0.name").is_some() && r.get("tools.1.url").is_some() && r.get("tools.2").is_some(), "{r}");
    let r = server
        .post(
            "/v1/agents",
            k,
            json!({ "name": "A", "prompt": "", "voice": "alloy", "tools": [{ "name": "t" }, { "name": "t" }] }),
        )
        .await
        .expect(400);
    assert_eq!(r["tools"], json!(["Tool names must be unique."]));

    // Not JSON, not an object, too large.
    let r = server.call("POST", "/v1/agents", Some(&bearer(k)), Some(Body::Raw(b"{\"name\": ".to_vec()))).await;
    assert_eq!((r.status, r.body["code"].as_str()), (400, Some("parse_error")), "{}", r.body);
    assert!(r.body["detail"].as_str().unwrap().starts_with("JSON parse error"));
    let r = server.call("POST", "/v1/agents", Some(&bearer(k)), Some(Body::Json(json!(["name"])))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, json!({ "non_field_errors": ["Invalid data. Expected a dictionary, but got list."] }));
    let huge = json!({ "name": "A", "prompt": "x".repeat(gateway_limit() + 1) });
    let r = server.post("/v1/agents", k, huge).await;
    assert_eq!((r.status, r.body["code"].as_str()), (413, Some("payload_too_large")));

    // Nothing invalid was stored.
    assert_eq!(server.get("/v1/agents", k).await.expect(200).as_array().unwrap().len(), 2);
}

fn gateway_limit() -> usize {
    64 * 1024
}

#[tokio::test]
async fn another_orgs_ids_answer_exactly_as_missing_ones() {
    let server = Server::start();
    let acme = server.create_org("Acme").await;
    let other = server.create_org("Other").await;
    let agent =
        server.post("/v1/agents", &acme.key, json!({ "name": "A", "prompt": "", "voice": "alloy" })).await.expect(201);
    let conn = server.post("/v1/voip-connections", &acme.key, json!({ "provider": "sim" })).await.expect(201);
    let number = server
        .post("/v1/phone-numbers", &acme.key, json!({ "number": "+14155550100", "voip_connection_id": conn["id"] }))
        .await
        .expect(201);

    for (path, missing) in [
        (format!("/v1/agents/{}", agent["id"]), "/v1/agents/999999"),
        (format!("/v1/voip-connections/{}", conn["id"]), "/v1/voip-connections/999999"),
        (format!("/v1/phone-numbers/{}", number["id"]), "/v1/phone-numbers/999999"),
    ] {
        let theirs = server.get(&path, &other.key).await;
        let nobodys = server.get(missing, &other.key).await;
        assert_eq!((theirs.status, &theirs.body), (404, &nobodys.body), "{path}");
        server.delete(&path, &other.key).await.expect(404);
    }
    server.patch(&format!("/v1/agents/{}", agent["id"]), &other.key, json!({ "name": "x" })).await.expect(404);
    let full = json!({ "name": "x", "prompt": "", "voice": "alloy" });
    server.put(&format!("/v1/agents/{}", agent["id"]), &other.key, full).await.expect(404);
    server.post(&format!("/v1/voip-connections/{}/verify", conn["id"]), &other.key, json!({})).await.expect(404);
    // Another org's agent cannot be assigned to one's own number either.
    let own_conn = server.post("/v1/voip-connections", &other.key, json!({ "provider": "sim" })).await.expect(201);
    let r = server
        .post(
            "/v1/phone-numbers",
            &other.key,
            json!({ "number": "+14155550111", "voip_connection_id": own_conn["id"], "inbound_agent_id": agent["id"] }),
        )
        .await
        .expect(400);
    assert!(r["inbound_agent_id"][0].as_str().unwrap().contains("does not exist"));
    assert_eq!(server.get("/v1/agents", &other.key).await.expect(200), json!([]));
    // Ids that are not numbers name nothing.
    server.get("/v1/agents/abc", &acme.key).await.expect(404);
    server.get("/v1/agents/-1", &acme.key).await.expect(404);
}

#[tokio::test]
async fn the_org_header_is_ignored_for_api_keys() {
    let server = Server::start();
    let acme = server.create_org("Acme").await;
    let other = server.create_org("Other").await;
    server.post("/v1/agents", &acme.key, json!({ "name": "Acme's", "prompt": "", "voice": "alloy" })).await.expect(201);
    let response = reqwest::Client::new()
        .get(format!("{}/v1/agents", server.url))
        .bearer_auth(&other.key)
        .header("X-ThunderPhone-Org", acme.id.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
}

#[tokio::test]
async fn voip_connections_hide_passwords_and_verify_with_their_carrier() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let k = &org.key;

    let sim = server.post("/v1/voip-connections", k, json!({ "provider": "sim", "name": "Lab" })).await.expect(201);
    assert_eq!((sim["provider"].as_str(), sim["verified"].as_bool()), (Some("sim"), Some(false)));
    let verified = server.post(&format!("/v1/voip-connections/{}/verify", sim["id"]), k, json!({})).await.expect(200);
    assert_eq!(verified["verified"], true);
    assert!(is_timestamp(&verified["verified_at"]));

    // A SIP server on loopback that answers OPTIONS.
    let sip_server = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sip_port = sip_server.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = sip_server.recv_from(&mut buf).await {
            if buf[..n].starts_with(b"OPTIONS ") {
                let _ = sip_server.send_to(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", from).await;
            }
        }
    });
    let body = json!({ "provider": "sip", "host": "127.0.0.1", "port": sip_port, "username": "acme", "password": "s3cret-pw" });
    let sip = server.post("/v1/voip-connections", k, body).await.expect(201);
    assert_eq!((sip["transport"].as_str(), sip["port"].as_u64()), (Some("udp"), Some(sip_port.into())));
    let verified = server.post(&format!("/v1/voip-connections/{}/verify", sip["id"]), k, json!({})).await.expect(200);
    assert_eq!(verified["verified"], true, "{verified}");

    // Nothing listens on this port: verification fails, with the reason.
    let dead_port = switchboard_tests::free_udp_port();
    let body = json!({ "provider": "sip", "host": "127.0.0.1", "port": dead_port, "transport": "udp", "username": "a", "password": "b" });
    let dead = server.post("/v1/voip-connections", k, body).await.expect(201);
    let failed = server.post(&format!("/v1/voip-connections/{}/verify", dead["id"]), k, json!({})).await.expect(200);
    assert_eq!(failed["verified"], false);
    assert!(failed["verification_error"].is_string(), "{failed}");

    for listing in [
        server.get("/v1/voip-connections", k).await.expect(200),
        server.get(&format!("/v1/voip-connections/{}", sip["id"]), k).await.expect(200),
    ] {
        assert!(!listing.to_string().contains("s3cret-pw"), "the password leaked: {listing}");
        assert!(!listing.to_string().contains("password"), "{listing}");
    }

    let r = server.post("/v1/voip-connections", k, json!({ "provider": "sip" })).await.expect(400);
    assert_eq!(r["host"], json!(["This field is required."]));
    assert_eq!(r["username"], json!(["This field is required."]));
    assert_eq!(r["password"], json!(["This field is required."]));
    let r = server
        .post("/v1/voip-connections", k, json!({ "provider": "sip", "host": "h", "port": 70000, "transport": "carrier-pigeon", "username": "u", "password": "p" }))
        .await
        .expect(400);
    assert!(r.get("port").is_some() && r.get("transport").is_some(), "{r}");
    let r = server.post("/v1/voip-connections", k, json!({ "provider": "fax" })).await.expect(400);
    assert_eq!(r["provider"], json!(["\"fax\" is not a valid choice."]));
    server.post("/v1/voip-connections", k, json!({ "provider": "sim", "host": "x" })).await.expect(400);

    server.delete(&format!("/v1/voip-connections/{}", dead["id"]), k).await.expect(204);
    server.get(&format!("/v1/voip-connections/{}", dead["id"]), k).await.expect(404);
}

#[tokio::test]
async fn phone_numbers_are_unique_across_orgs_and_demo_numbers_are_inbound_only() {
    let server = Server::start();
    let acme = server.create_org("Acme").await;
    let other = server.create_org("Other").await;
    let agent =
        server.post("/v1/agents", &acme.key, json!({ "name": "A", "prompt": "", "voice": "alloy" })).await.expect(201);
    let conn = server.post("/v1/voip-connections", &acme.key, json!({ "provider": "sim" })).await.expect(201);
    let other_conn = server.post("/v1/voip-connections", &other.key, json!({ "provider": "sim" })).await.expect(201);

    let r = server
        .post("/v1/phone-numbers", &acme.key, json!({ "number": "4155550100", "voip_connection_id": conn["id"] }))
        .await
        .expect(400);
    assert!(r["number"][0].as_str().unwrap().contains("E.164"), "{r}");
    let r = server.post("/v1/phone-numbers", &acme.key, json!({})).await.expect(400);
    assert_eq!(
        (&r["number"], &r["voip_connection_id"]),
        (&json!(["This field is required."]), &json!(["This field is required."]))
    );

    let number = server
        .post(
            "/v1/phone-numbers",
            &acme.key,
            json!({ "number": "+14155550100", "voip_connection_id": conn["id"], "outbound_agent_id": agent["id"] }),
        )
        .await
        .expect(201);
    assert_eq!(
        (number["type"].as_str(), &number["outbound_agent_id"], &number["inbound_agent_id"]),
        (Some("voip"), &agent["id"], &Value::Null)
    );

    let taken = server
        .post(
            "/v1/phone-numbers",
            &other.key,
            json!({ "number": "+14155550100", "voip_connection_id": other_conn["id"] }),
        )
        .await
        .expect(409);
    assert_eq!(taken["code"], "phone_number_taken");
    // Adding it again to the same org conflicts too, and must not free the number for others.
    let again = server
        .post("/v1/phone-numbers", &acme.key, json!({ "number": "+14155550100", "voip_connection_id": conn["id"] }))
        .await
        .expect(409);
    assert_eq!(again["code"], "phone_number_exists");
    server
        .post(
            "/v1/phone-numbers",
            &other.key,
            json!({ "number": "+14155550100", "voip_connection_id": other_conn["id"] }),
        )
        .await
        .expect(409);
    // A failed create releases its claim: the number is still free for others afterwards.
    server
        .post("/v1/phone-numbers", &acme.key, json!({ "number": "+14155550199", "voip_connection_id": 424242 }))
        .await
        .expect(400);
    server
        .post(
            "/v1/phone-numbers",
            &other.key,
            json!({ "number": "+14155550199", "voip_connection_id": other_conn["id"] }),
        )
        .await
        .expect(201);

    let id = number["id"].as_u64().unwrap();
    let updated = server
        .patch(
            &format!("/v1/phone-numbers/{id}"),
            &acme.key,
            json!({ "inbound_agent_id": agent["id"], "outbound_agent_id": null }),
        )
        .await
        .expect(200);
    assert_eq!((&updated["inbound_agent_id"], &updated["outbound_agent_id"]), (&agent["id"], &Value::Null));
    server.patch(&format!("/v1/phone-numbers/{id}"), &acme.key, json!({ "inbound_agent_id": 5 })).await.expect(400);
    server.patch(&format!("/v1/phone-numbers/{id}"), &acme.key, json!({ "number": "+14155550101" })).await.expect(400);

    let demo =
        server.post("/v1/phone-numbers/demo", &acme.key, json!({ "inbound_agent_id": agent["id"] })).await.expect(201);
    assert_eq!(demo["type"], "demo");
    assert!(demo["number"].as_str().unwrap().starts_with("+1500555"));
    let demo2 = server.post("/v1/phone-numbers/demo", &other.key, json!({})).await.expect(201);
    assert_ne!(demo["number"], demo2["number"]);
    let r = server
        .patch(&format!("/v1/phone-numbers/{}", demo["id"]), &acme.key, json!({ "outbound_agent_id": agent["id"] }))
        .await
        .expect(400);
    assert_eq!(r["outbound_agent_id"], json!(["Demo numbers are inbound-only."]));
    server
        .post("/v1/phone-numbers", &acme.key, json!({ "number": demo2["number"], "voip_connection_id": conn["id"] }))
        .await
        .expect(400);

    // A connection that backs a number cannot go; deleting the number frees it for anyone.
    let r = server.delete(&format!("/v1/voip-connections/{}", conn["id"]), &acme.key).await.expect(409);
    assert_eq!(r["code"], "voip_connection_in_use");
    assert_eq!(server.get("/v1/phone-numbers", &acme.key).await.expect(200).as_array().unwrap().len(), 2);
    server.delete(&format!("/v1/phone-numbers/{id}"), &acme.key).await.expect(204);
    server.get(&format!("/v1/phone-numbers/{id}"), &acme.key).await.expect(404);
    server
        .post(
            "/v1/phone-numbers",
            &other.key,
            json!({ "number": "+14155550100", "voip_connection_id": other_conn["id"] }),
        )
        .await
        .expect(201);

    // Deleting an agent unassigns it from the numbers that used it.
    server.delete(&format!("/v1/agents/{}", agent["id"]), &acme.key).await.expect(204);
    let demo_now = server.get(&format!("/v1/phone-numbers/{}", demo["id"]), &acme.key).await.expect(200);
    assert_eq!(demo_now["inbound_agent_id"], Value::Null);
}

/// Eight parallel creates of one number in one org leave it recorded once, and its claim
/// stands: a failing create of the same org cannot release the claim the recorded number rests
/// on, so another org can never take it too. Deleting it frees it for others at once.
#[tokio::test]
async fn parallel_creates_of_one_number_leave_it_to_one_org() {
    let server = std::sync::Arc::new(Server::start());
    let a = server.create_org("A").await;
    let b = server.create_org("B").await;
    let a_conn = server.post("/v1/voip-connections", &a.key, json!({ "provider": "sim" })).await.expect(201);
    let b_conn = server.post("/v1/voip-connections", &b.key, json!({ "provider": "sim" })).await.expect(201);
    let body = json!({ "number": "+14155550177", "voip_connection_id": a_conn["id"] });
    let creates: Vec<_> = (0..8)
        .map(|_| {
            let (server, key, body) = (server.clone(), a.key.clone(), body.clone());
            tokio::spawn(async move { server.post("/v1/phone-numbers", &key, body).await })
        })
        .collect();
    let mut created = Vec::new();
    for create in creates {
        let r = create.await.unwrap();
        match r.status {
            201 => created.push(r.body),
            409 => assert_eq!(r.body["code"], "phone_number_exists", "{}", r.body),
            other => panic!("a parallel create answered {other}: {}", r.body),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create records the number: {created:?}");
    let listed = server.get("/v1/phone-numbers", &a.key).await.expect(200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    let b_body = json!({ "number": "+14155550177", "voip_connection_id": b_conn["id"] });
    let taken = server.post("/v1/phone-numbers", &b.key, b_body.clone()).await.expect(409);
    assert_eq!(taken["code"], "phone_number_taken");

    server.delete(&format!("/v1/phone-numbers/{}", created[0]["id"]), &a.key).await.expect(204);
    server.post("/v1/phone-numbers", &b.key, b_body).await.expect(201);
    server.post("/v1/phone-numbers", &a.key, body).await.expect(409);
}

#[tokio::test]
async fn legacy_org_paths_are_gone_and_unknown_paths_are_json_404s() {
    let server = Server::start();
    for method in ["GET", "POST", "DELETE"] {
        let r = server.call(method, "/v1/orgs/42/agents/7", None, None).await;
        assert_eq!(r.status, 410, "{method}");
        assert_eq!(r.body["legacy_path"], "/v1/orgs/42/agents/7");
        assert_eq!(r.body["new_path"], "/v1/agents/7");
        assert!(r.body["detail"].as_str().unwrap().contains("moved"));
    }
    let r = server.call("GET", "/v1/nothing-here", None, None).await;
    assert_eq!((r.status, r.body["code"].as_str()), (404, Some("not_found")));
    let r = server.call("DELETE", "/v1/agents", None, None).await;
    assert_eq!((r.status, r.body["code"].as_str()), (405, Some("method_not_allowed")));
    // Credentials that are presented are checked first, wherever the request goes.
    let r = server.call("DELETE", "/v1/agents", Some("Bearer x"), None).await;
    assert_eq!((r.status, r.body["code"].as_str()), (401, Some("authentication_failed")));
}

#[tokio::test]
async fn everything_written_survives_a_restart_and_a_crash() {
    let mut server = Server::start();
    let org = server.create_org("Acme").await;
    let agent = server
        .post("/v1/agents", &org.key, json!({ "name": "Before", "prompt": "", "voice": "alloy" }))
        .await
        .expect(201);
    let conn = server.post("/v1/voip-connections", &org.key, json!({ "provider": "sim" })).await.expect(201);
    let number = server
        .post("/v1/phone-numbers", &org.key, json!({ "number": "+14155550100", "voip_connection_id": conn["id"] }))
        .await
        .expect(201);

    server.stop();
    server.restart();
    assert_eq!(server.get(&format!("/v1/agents/{}", agent["id"]), &org.key).await.expect(200), agent);
    assert_eq!(server.get(&format!("/v1/phone-numbers/{}", number["id"]), &org.key).await.expect(200), number);

    // Acknowledged writes survive SIGKILL, and ids are never handed out twice.
    let after = server
        .post("/v1/agents", &org.key, json!({ "name": "Acked", "prompt": "", "voice": "alloy" }))
        .await
        .expect(201);
    server.kill();
    server.restart();
    assert_eq!(server.get(&format!("/v1/agents/{}", after["id"]), &org.key).await.expect(200), after);
    let newest = server
        .post("/v1/agents", &org.key, json!({ "name": "After", "prompt": "", "voice": "alloy" }))
        .await
        .expect(201);
    assert!(newest["id"].as_u64() > after["id"].as_u64());
    // The directory survived too: the number is still taken.
    let other = server.create_org("Other").await;
    let other_conn = server.post("/v1/voip-connections", &other.key, json!({ "provider": "sim" })).await.expect(201);
    server
        .post(
            "/v1/phone-numbers",
            &other.key,
            json!({ "number": "+14155550100", "voip_connection_id": other_conn["id"] }),
        )
        .await
        .expect(409);
    assert_ne!(other.id, org.id);
}

#[tokio::test]
async fn an_audit_replay_matches_the_live_projections() {
    let mut server = Server::start();
    let org = server.create_org("Acme").await;
    for i in 0..5 {
        let a = server
            .post("/v1/agents", &org.key, json!({ "name": format!("A{i}"), "prompt": "", "voice": "alloy" }))
            .await
            .expect(201);
        server.patch(&format!("/v1/agents/{}", a["id"]), &org.key, json!({ "voice": "echo" })).await.expect(200);
    }
    server.post("/v1/phone-numbers/demo", &org.key, json!({})).await.expect(201);
    let credits = format!("/admin/v1/orgs/{}/credits", org.id);
    server.post(&credits, ADMIN_TOKEN, json!({ "amount_cents": 700, "reference": "a" })).await.expect(201);
    server.post(&credits, ADMIN_TOKEN, json!({ "amount_cents": 300, "reference": "b" })).await.expect(201);
    server.stop();
    switchboard_tests::audit(&server);
}

#[tokio::test]
async fn balances_start_at_zero_and_credits_are_idempotent_by_reference() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let other = server.create_org("Other").await;
    let balance = server.get("/v1/billing/balance", &org.key).await.expect(200);
    assert_eq!(
        balance,
        json!({ "balance_cents": 0, "reserved_cents": 0, "available_cents": 0, "currency": "usd", "rate_cents_per_minute": 10 })
    );

    let path = format!("/admin/v1/orgs/{}/credits", org.id);
    let credit =
        server.post(&path, ADMIN_TOKEN, json!({ "amount_cents": 2500, "reference": "ch_1" })).await.expect(201);
    assert_eq!(
        (credit["kind"].as_str(), credit["amount_cents"].as_i64(), credit["balance_after_cents"].as_i64()),
        (Some("top_up"), Some(2500), Some(2500))
    );
    assert_eq!((credit["reference"].as_str(), &credit["call_id"]), (Some("ch_1"), &Value::Null));
    assert!(credit["id"].is_u64() && is_timestamp(&credit["created_at"]) && credit["description"].is_string());

    // The same reference again: the same transaction, nothing added.
    let again = server.post(&path, ADMIN_TOKEN, json!({ "amount_cents": 2500, "reference": "ch_1" })).await.expect(201);
    assert_eq!(again, credit);
    let r = server.post(&path, ADMIN_TOKEN, json!({ "amount_cents": 999, "reference": "ch_1" })).await.expect(409);
    assert_eq!(r["code"], "reference_reused");
    let balance = server.get("/v1/billing/balance", &org.key).await.expect(200);
    assert_eq!((balance["balance_cents"].as_i64(), balance["available_cents"].as_i64()), (Some(2500), Some(2500)));
    assert_eq!(server.get("/v1/billing/balance", &other.key).await.expect(200)["balance_cents"], 0);

    for bad in [
        json!({ "amount_cents": 0, "reference": "x" }),
        json!({ "amount_cents": "5", "reference": "x" }),
        json!({ "amount_cents": 5 }),
        json!({ "amount_cents": 5, "reference": "x", "extra": 1 }),
    ] {
        server.post(&path, ADMIN_TOKEN, bad).await.expect(400);
    }
    server
        .post("/admin/v1/orgs/424242/credits", ADMIN_TOKEN, json!({ "amount_cents": 5, "reference": "x" }))
        .await
        .expect(404);
    server.post(&path, &org.key, json!({ "amount_cents": 5, "reference": "x" })).await.expect(401);

    let rate = server
        .patch(&format!("/admin/v1/orgs/{}/billing", org.id), ADMIN_TOKEN, json!({ "rate_cents_per_minute": 12 }))
        .await
        .expect(200);
    assert_eq!(rate["rate_cents_per_minute"], 12);
    assert_eq!(server.get("/v1/billing/balance", &org.key).await.expect(200)["rate_cents_per_minute"], 12);
    server
        .patch(&format!("/admin/v1/orgs/{}/billing", org.id), ADMIN_TOKEN, json!({ "rate_cents_per_minute": 0 }))
        .await
        .expect(400);
}

#[tokio::test]
async fn transactions_page_newest_first_and_reject_bad_pages() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let path = format!("/admin/v1/orgs/{}/credits", org.id);
    for (i, cents) in [100, 200, 300].iter().enumerate() {
        server
            .post(&path, ADMIN_TOKEN, json!({ "amount_cents": cents, "reference": format!("r{i}") }))
            .await
            .expect(201);
    }
    let page = server.get("/v1/billing/transactions", &org.key).await.expect(200);
    assert_eq!((page["total"].as_u64(), page["limit"].as_u64(), page["offset"].as_u64()), (Some(3), Some(50), Some(0)));
    let amounts: Vec<i64> =
        page["results"].as_array().unwrap().iter().map(|t| t["amount_cents"].as_i64().unwrap()).collect();
    assert_eq!(amounts, vec![300, 200, 100]);
    let balances: Vec<i64> =
        page["results"].as_array().unwrap().iter().map(|t| t["balance_after_cents"].as_i64().unwrap()).collect();
    assert_eq!(balances, vec![600, 300, 100]);

    let page = server.get("/v1/billing/transactions?limit=1&offset=1", &org.key).await.expect(200);
    assert_eq!((page["total"].as_u64(), page["results"][0]["amount_cents"].as_i64()), (Some(3), Some(200)));
    let page = server.get("/v1/billing/transactions?offset=3", &org.key).await.expect(200);
    assert_eq!(page["results"], json!([]));

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("limit=1.5", "limit"),
    ] {
        let r = server.get(&format!("/v1/billing/transactions?{query}"), &org.key).await.expect(400);
        assert!(r[field].is_array(), "{query}: {r}");
    }
    server.get("/v1/billing/transactions?limit=200", &org.key).await.expect(200);
    let other = server.create_org("Other").await;
    assert_eq!(server.get("/v1/billing/transactions", &other.key).await.expect(200)["total"], 0);
}
