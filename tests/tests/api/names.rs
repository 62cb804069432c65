//! Names and labels the API stores refuse control and format characters (NUL, bidi
//! overrides, zero-width characters), which would let one name pass for another.

use serde_json::json;
use switchboard_tests::{ADMIN_TOKEN, Server};

#[tokio::test]
async fn every_stored_name_refuses_control_and_format_characters() {
    let server = Server::start();
    let org = server.create_org("Acme").await;
    let message = "This field may not contain control or invisible formatting characters.";
    for hidden in ["Acme\0", "Acme\u{202e}moc.evil", "Ac\u{200b}me", "Acme\u{2066}", "Ac\u{ad}me", "\u{feff}Acme"] {
        let creates = [
            ("/admin/v1/orgs", ADMIN_TOKEN, json!({ "name": hidden })),
            ("/v1/keys", org.key.as_str(), json!({ "name": hidden })),
            ("/v1/agents", org.key.as_str(), json!({ "name": hidden, "prompt": "", "voice": "alloy" })),
            (
                "/v1/voip-connections",
                org.key.as_str(),
                json!({
                    "provider": "manual", "sip_config": { "host": "sim" }, "name": hidden,
                    "verification_evidence_id": "6f1c2a4e-0b7d-4c3e-9a21-5d8e7f604b13"
                }),
            ),
            ("/v1/test-call-batches", org.key.as_str(), json!({ "name": hidden, "run_count": 1 })),
        ];
        for (path, key, body) in creates {
            let r = server.post(path, key, body).await;
            assert_eq!(r.status, 400, "{path} {hidden:?}: {}", r.body);
            assert_eq!(r.body["name"], json!([message]), "{path} {hidden:?}: {}", r.body);
        }
        let agent = server
            .post("/v1/agents", &org.key, json!({ "name": "Support", "prompt": "", "voice": "alloy" }))
            .await
            .expect(201);
        let r = server.patch(&format!("/v1/agents/{}", agent["id"]), &org.key, json!({ "name": hidden })).await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    // Names in any script, with accents and emoji, are names.
    server
        .post("/v1/agents", &org.key, json!({ "name": "Café 東京 🤖", "prompt": "", "voice": "alloy" }))
        .await
        .expect(201);
}
