//! The loopback end of the OAuth browser flow: a tiny HTTP server on 127.0.0.1 that waits
//! for Box to send the browser back to `http://127.0.0.1:PORT/callback?code=…&state=…`.
//!
//! Each connection is read in its own task (browsers open spare connections that never send
//! anything), every request other than the callback gets a 404, and a callback whose `state`
//! is not the one this login sent is refused with a page saying why, while the wait goes on:
//! such a request did not come from the login the user started (CSRF), and refusing it must
//! not let whoever sent it end the real login.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use box_client::auth::oauth::{check_state, code_from_redirect};
use box_client::Secret;

/// The path Box redirects to.
pub const CALLBACK_PATH: &str = "/callback";
/// How long one connection may take to send its request.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a request head that is read.
const MAX_HEAD: usize = 16 * 1024;

/// A page for the browser.
pub struct Page {
    status: u16,
    title: String,
    text: String,
}

impl Page {
    pub fn ok(title: &str, text: &str) -> Page {
        Page {
            status: 200,
            title: title.into(),
            text: text.into(),
        }
    }

    pub fn refused(title: &str, text: &str) -> Page {
        Page {
            status: 400,
            title: title.into(),
            text: text.into(),
        }
    }

    fn not_found() -> Page {
        Page {
            status: 404,
            title: "Not found".into(),
            text: format!("boxfs waits for Box's redirect at {CALLBACK_PATH}."),
        }
    }

    fn response(&self) -> Vec<u8> {
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>boxfs: {title}</title>\
             </head><body><h1>{title}</h1><p>{text}</p></body></html>",
            title = escape_html(&self.title),
            text = escape_html(&self.text)
        );
        let reason = match self.status {
            200 => "OK",
            404 => "Not Found",
            _ => "Bad Request",
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            self.status,
            body.len()
        )
        .into_bytes()
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The browser's connection, kept open until the code has been exchanged so that the page
/// can say how the login ended.
pub struct PendingReply {
    stream: TcpStream,
}

impl PendingReply {
    pub async fn send(mut self, page: Page) {
        let _ = self.stream.write_all(&page.response()).await;
        let _ = self.stream.shutdown().await;
    }
}

async fn reply(mut stream: TcpStream, page: Page) {
    let _ = stream.write_all(&page.response()).await;
    let _ = stream.shutdown().await;
}

/// Reads a request head and returns its target (`/callback?code=…`).
async fn read_target(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut parts = text.lines().next()?.split_whitespace();
    let _method = parts.next()?;
    parts.next().map(str::to_string)
}

/// Aborts the accepting task when the wait ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct RedirectListener {
    listener: TcpListener,
    port: u16,
}

impl RedirectListener {
    /// Listens on 127.0.0.1:`port` (0: a free port).
    pub async fn bind(port: u16) -> Result<RedirectListener, String> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port} for Box's redirect: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("cannot listen for Box's redirect: {e}"))?
            .port();
        Ok(RedirectListener { listener, port })
    }

    /// What to register as the app's redirect URI, and send as `redirect_uri`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}{CALLBACK_PATH}", self.port)
    }

    /// Waits for the redirect that carries `state`, and returns its code with the
    /// browser's connection. Box's refusal (`?error=access_denied`) ends the wait with an
    /// error (the page says so); a wrong state is refused and the wait goes on.
    pub async fn wait_for_code(self, state: &str) -> Result<(Secret, PendingReply), String> {
        let (tx, mut rx) = mpsc::channel::<(String, TcpStream)>(8);
        let listener = self.listener;
        let _accepting = AbortOnDrop(tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let target =
                        tokio::time::timeout(REQUEST_READ_TIMEOUT, read_target(&mut stream)).await;
                    match target {
                        Ok(Some(t)) if t.split('?').next() == Some(CALLBACK_PATH) => {
                            let _ = tx.send((t, stream)).await;
                        }
                        Ok(Some(_)) => reply(stream, Page::not_found()).await,
                        _ => {}
                    }
                });
            }
        }));
        let base = format!("http://127.0.0.1:{}", self.port);
        while let Some((target, stream)) = rx.recv().await {
            let redirect = format!("{base}{target}");
            let params: HashMap<String, String> = url::Url::parse(&redirect)
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default();
            let returned = params.get("state").map(String::as_str).unwrap_or("");
            if let Err(e) = check_state(state, returned) {
                eprintln!("boxfs: refused a redirect to the login port: {e}. Still waiting.");
                reply(
                    stream,
                    Page::refused(
                        "Login refused",
                        &format!(
                            "This request does not belong to the login boxfs started: {e}. \
                             If you did start `boxfs login`, use the address it printed."
                        ),
                    ),
                )
                .await;
                continue;
            }
            return match code_from_redirect(&redirect, state) {
                Ok(code) => Ok((code, PendingReply { stream })),
                Err(e) => {
                    let message = e.to_string();
                    reply(stream, Page::refused("Login failed", &message)).await;
                    Err(message)
                }
            };
        }
        Err("the login port stopped listening".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let page = Page::refused("x", "<script>&\"");
        let text = String::from_utf8(page.response()).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("&lt;script&gt;&amp;&quot;"), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
