//! A Rocket.Chat-style realtime client for postern: connect over DDP, log
//! in with a second factor, then call a 2FA-protected method.
//!
//!     cargo run --example realtime -- ws://127.0.0.1:8080/websocket alice 'her password'
//!
//! Whenever postern answers `totp-required`, the code it just sent (by mail
//! or through the user's channel) is read from stdin and the call is retried.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Error = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, user, password, ..] = args.as_slice() else {
        return Err("usage: realtime <ws-url> <username> <password> [protected method]".into());
    };
    let protected = args.get(3).map_or("2fa:disable-email", String::as_str);

    // 1. Connect: DDP version 1.
    let (mut ws, _) = connect_async(url.as_str()).await?;
    send(
        &mut ws,
        json!({ "msg": "connect", "version": "1", "support": ["1"] }),
    )
    .await?;
    println!("connected: {}", next(&mut ws).await?);

    // 2. Log in with a password digest; on totp-required, log in again with
    //    {totp: {login, code}}.
    let login = json!({
        "user": { "username": user },
        "password": { "digest": hex::encode(Sha256::digest(password)), "algorithm": "sha-256" },
    });
    let me = match call(&mut ws, "login", json!([login])).await? {
        Ok(me) => me,
        Err(e) if e["error"] == "totp-required" => {
            let code = ask_code(&e)?;
            let totp = json!({ "totp": { "login": login, "code": code } });
            call(&mut ws, "login", json!([totp]))
                .await?
                .map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string().into()),
    };
    println!(
        "logged in as {} (token expires {})",
        me["id"].as_str().unwrap_or("?"),
        me["tokenExpires"]
    );

    // 3. A protected method: first without a code, then with
    //    {twoFactorCode, twoFactorMethod} as its last parameter.
    let result = match call(&mut ws, protected, json!([])).await? {
        Err(e) if e["error"] == "totp-required" => {
            let code = ask_code(&e)?;
            let second =
                json!({ "twoFactorCode": code, "twoFactorMethod": e["details"]["method"] });
            call(&mut ws, protected, json!([second])).await?
        }
        other => other,
    };
    println!("{protected}: {}", result.unwrap_or_else(|e| e));
    Ok(())
}

async fn send(ws: &mut Ws, v: Value) -> Result<(), Error> {
    Ok(ws.send(Message::text(v.to_string())).await?)
}

/// The next DDP message; answers the server's pings on the way.
async fn next(ws: &mut Ws) -> Result<Value, Error> {
    loop {
        let Some(frame) = ws.next().await else {
            return Err("connection closed".into());
        };
        if let Message::Text(t) = frame? {
            let m: Value = serde_json::from_str(t.as_str())?;
            if m["msg"] == "ping" {
                send(ws, json!({ "msg": "pong", "id": m["id"] })).await?;
                continue;
            }
            return Ok(m);
        }
    }
}

/// Calls a method and waits for its `result`: Ok(result) or Err(Meteor error).
async fn call(ws: &mut Ws, method: &str, params: Value) -> Result<Result<Value, Value>, Error> {
    let id = uuid::Uuid::new_v4().to_string();
    send(
        ws,
        json!({ "msg": "method", "id": id, "method": method, "params": params }),
    )
    .await?;
    loop {
        let m = next(ws).await?;
        if m["msg"] == "result" && m["id"] == id.as_str() {
            return Ok(match m.get("error") {
                Some(e) => Err(e.clone()),
                None => Ok(m.get("result").cloned().unwrap_or(Value::Null)),
            });
        }
    }
}

/// Shows what postern said about the code and reads it from stdin.
fn ask_code(err: &Value) -> Result<String, Error> {
    let d = &err["details"];
    let how = match d["method"].as_str() {
        Some("totp") => "your authenticator app",
        Some("password") => "your password (its hex SHA-256 is sent)",
        _ if d["codeGenerated"] == true => "the code just sent to you",
        _ => "the code sent to you earlier (still valid)",
    };
    let (reason, method) = (err["reason"].as_str(), d["method"].as_str());
    println!(
        "{}: enter {how} [{}]",
        reason.unwrap_or("2FA"),
        method.unwrap_or("?")
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let code = line.trim().to_string();
    Ok(match d["method"].as_str() {
        Some("password") => hex::encode(Sha256::digest(&code)),
        _ => code,
    })
}
