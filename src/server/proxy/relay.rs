//! The response: its head parsed strictly and rewritten for the client,
//! then its body passed on re-framed, through a bounded buffer.

use super::parts::Relay;
use super::{End, Failure, Proxy, State};
use crate::handler::gzip;
use crate::handler::proxy::{self, ClientBody, ClientSide, HeadHow, ResponseBody};
use crate::http::Version;
use crate::http::body::ChunkedDecoder;
use crate::server::client::Client;
use crate::server::ctx::Ctx;
use std::io::{self, Write};

/// Bodies that fit after the pending head within this are copied, so head
/// and body leave in one write; larger ones go straight from the relay
/// buffer to the client.
pub(super) const COPY_LIMIT: usize = 8 << 10;

/// What the relay does with a parsed upstream response head.
pub(super) enum Plan {
    /// An interim answer (`100`, `102`, `103`): dropped.
    Interim,
    /// A `101` to a request that asked for no upgrade: 502.
    UnaskedSwitch,
    /// Relayed with this framing to the client; then `true` when it
    /// becomes a WebSocket tunnel, and `true` when its body is gzipped.
    Relay(ClientBody, bool, bool),
}

impl Proxy {
    /// Parses the response head when it is complete, then passes body
    /// bytes to the client re-framed.
    pub(super) fn relay_response(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        if self.state == State::Tunnel {
            c.out.head.extend_from_slice(self.from_up.data());
            self.sent += self.from_up.data().len() as u64;
            self.from_up.clear();
            return Ok(true);
        }
        if self.relay.is_none() {
            if let Some(progress) = self.take_head(c, ctx) {
                return Ok(progress);
            }
        }
        let Some(r) = self.relay.as_ref() else {
            return Ok(false);
        };
        if r.done {
            // Bytes after a complete response: the connection is not reused.
            self.from_up.clear();
            if let Some(r) = self.relay.as_mut() {
                r.head.keep_alive = false;
            }
            return Ok(false);
        }
        let chunked_out = r.to_client == ClientBody::Chunked;
        let identity = matches!(r.head.body, ResponseBody::Length(_) | ResponseBody::Close)
            && !chunked_out
            && r.gzip.is_none();
        let avail = match r.head.body {
            ResponseBody::Length(_) => (r.left.min(self.from_up.data().len() as u64)) as usize,
            _ => self.from_up.data().len(),
        };
        let pending = c.out.head.len() - c.out.head_pos;
        if identity && pending + avail > COPY_LIMIT {
            // Straight from the relay buffer to the client, once the head
            // is out: no copy, and no more memory than the buffer. (Small
            // bodies are copied after the head: one write for both.)
            if pending > 0 || !c.writable || avail == 0 {
                return Ok(false);
            }
            return self.write_through(c, avail, ctx);
        }
        self.copy_body(c, ctx)
    }

    /// Parses the upstream's response head, when it is whole, and writes
    /// the client's head. `None` when the relay is set up and its body
    /// (if any) is next; `Some(progress)` otherwise (an interim answer
    /// dropped, a head still partial, an error page made, a tunnel opened
    /// or a response without a body done).
    fn take_head(&mut self, c: &mut Client, ctx: &mut Ctx) -> Option<bool> {
        let client = ClientSide {
            http11: self.client_version == Version::Http11,
            keep_alive: self.client_keep_alive && !ctx.stopping,
        };
        let (websocket, http10) = (self.websocket, self.client_version == Version::Http10);
        let accepts_gzip = self.accepts_gzip;
        let level = self.route().gzip.comp_level;
        let route = self.route();
        let vars = self.kept_vars(c.peer);
        let (out, close_after) = (&mut c.out.head, &mut c.close_after);
        // One parse: the head is checked, then the client's head is
        // written from the same fields.
        let parsed =
            proxy::parse_response_then(self.from_up.data(), self.head_request, |head, fields| {
                if head.status < 200 && head.status != 101 {
                    // 100 Continue, 103 Early Hints: not relayed (xps
                    // answered Expect itself).
                    return Plan::Interim;
                }
                if head.status == 101 && !websocket {
                    // A switch nobody asked for: the bytes after it would
                    // be nobody's protocol.
                    return Plan::UnaskedSwitch;
                }
                let gzip = fields.gzip(head, route, accepts_gzip);
                let (to_client, close) = proxy::client_framing(head, client, gzip.encode);
                *close_after |= close;
                let how = HeadHow {
                    close: *close_after,
                    http10_keep_alive: http10 && !*close_after,
                    gzip,
                    now: (route.expires != crate::routing::Expires::Off)
                        .then(std::time::SystemTime::now),
                };
                fields.client_head(out, route, to_client, how, &vars);
                Plan::Relay(to_client, head.status == 101, gzip.encode)
            });
        let (head, to_client, upgrade, encode) = match parsed {
            Ok(Some((h, Plan::Relay(to_client, upgrade, encode)))) => {
                (h, to_client, upgrade, encode)
            }
            Ok(Some((_, Plan::UnaskedSwitch))) => {
                return Some(self.refuse_head(
                    c,
                    "101 Switching Protocols to a request that asked for no upgrade",
                    ctx,
                ));
            }
            Ok(Some((h, Plan::Interim))) => {
                // Interim answers are not progress: a `102` a second must
                // not hold a request forever.
                self.from_up.consume(h.len);
                return Some(true);
            }
            // The head does not fit the relay buffer (16 KiB; nginx's
            // default limit is 4–8 KiB).
            Ok(None) if !self.from_up.has_room() => {
                return Some(self.refuse_head(c, "response head too large", ctx));
            }
            Ok(None) => return Some(false),
            Err(bad) => return Some(self.refuse_head(c, bad.0, ctx)),
        };
        self.from_up.consume(head.len);
        self.started = true;
        self.progress = ctx.now;
        if upgrade {
            self.state = State::Tunnel;
            self.req_done = true;
            self.relay = Some(Relay {
                head,
                to_client,
                left: 0,
                decoder: None,
                done: false,
                gzip: None,
            });
            return Some(true);
        }
        let done = head.body == ResponseBody::None || head.body == ResponseBody::Length(0);
        self.relay = Some(Relay {
            left: match head.body {
                ResponseBody::Length(n) => n,
                _ => 0,
            },
            decoder: (head.body == ResponseBody::Chunked).then(|| ChunkedDecoder::new(u64::MAX)),
            gzip: (encode && !done).then(|| Box::new(gzip::Stream::new(level))),
            head,
            to_client,
            done,
        });
        if !done {
            return None;
        }
        if to_client == ClientBody::Chunked {
            c.out.head.extend_from_slice(b"0\r\n\r\n");
        }
        Some(true)
    }

    /// A response head that cannot be relayed: logged, and the client gets
    /// 502.
    fn refuse_head(&mut self, c: &mut Client, why: &str, ctx: &mut Ctx) -> bool {
        crate::log::warn(&format!(
            "upstream member {}: {why}; answering 502",
            self.addr
        ));
        self.leg_error(c, 502, ctx);
        self.from_up.clear();
        true
    }

    /// Writes up to `avail` body bytes from the relay buffer straight to
    /// the client (an identity body whose head is out).
    fn write_through(&mut self, c: &mut Client, avail: usize, ctx: &mut Ctx) -> Result<bool, End> {
        let Some(r) = self.relay.as_mut() else {
            return Ok(false);
        };
        match c.stream.write(&self.from_up.data()[..avail]) {
            Ok(n) => {
                c.written += n as u64;
                let whole = n == self.from_up.buf.len();
                self.from_up.consume(n);
                // A client that took a whole buffer at once after the first
                // 8 MiB keeps up (a stalled one cannot get that far: its
                // socket buffers fill first).
                if whole && self.sent >= 8 << 20 {
                    // Splice the rest when it is long and the request is
                    // all sent (the pipe then carries one direction).
                    let request_sent = self.req_done
                        && self.to_up_pos == self.to_up.len()
                        && !self.up_write_failed;
                    if r.left >= (1 << 20) + n as u64 && request_sent && !self.raw {
                        self.splice_body = true;
                    } else {
                        self.from_up.grow();
                    }
                }
                self.sent += n as u64;
                self.progress = ctx.now;
                c.progress = ctx.now;
                if let ResponseBody::Length(_) = r.head.body {
                    r.left -= n as u64;
                    r.done = r.left == 0;
                } else {
                    r.done = self.up_eof && self.from_up.is_empty();
                }
                Ok(n > 0)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // The client's socket just filled: its send_timeout starts
                // now.
                c.writable = false;
                c.progress = ctx.now;
                Ok(false)
            }
            Err(_) => Err(End::Close),
        }
    }

    /// Copies body bytes from the relay buffer into the client's output,
    /// re-framed (chunked for a client that gets chunks).
    fn copy_body(&mut self, c: &mut Client, ctx: &mut Ctx) -> Result<bool, End> {
        let Some(r) = self.relay.as_mut() else {
            return Ok(false);
        };
        let chunked_out = r.to_client == ClientBody::Chunked;
        let out = &mut c.out.head;
        let mut sent = 0u64;
        let mut gz = r.gzip.as_deref_mut();
        let mut emit = |data: &[u8]| {
            if data.is_empty() {
                return;
            }
            if let Some(g) = gz.as_deref_mut() {
                g.write(data);
                return;
            }
            if chunked_out {
                out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(data);
            }
            sent += data.len() as u64;
        };
        let used = match r.head.body {
            ResponseBody::Length(_) => {
                let n = (r.left.min(self.from_up.data().len() as u64)) as usize;
                emit(&self.from_up.data()[..n]);
                r.left -= n as u64;
                r.done = r.left == 0;
                n
            }
            ResponseBody::Chunked => {
                let Some(d) = r.decoder.as_mut() else {
                    return Err(End::Close);
                };
                let n = match d.decode(self.from_up.data(), &mut emit) {
                    Ok(n) => n,
                    Err(_) => {
                        // What was good goes out, then the client's
                        // connection closes without the last chunk: it
                        // cannot take the part for a whole body.
                        crate::log::warn(&format!(
                            "upstream member {}: bad chunked body; closing the client's connection",
                            self.addr
                        ));
                        self.sent += sent;
                        self.from_up.clear();
                        if let Some(s) = self.take_upstream(ctx) {
                            ctx.sockets.close(s);
                        }
                        self.up_readable = false;
                        self.up_eof = true;
                        self.draining = true;
                        return Ok(true);
                    }
                };
                r.done = d.is_done();
                n
            }
            ResponseBody::Close => {
                let n = self.from_up.data().len();
                emit(self.from_up.data());
                // After the upstream's close this was the rest.
                r.done = self.up_eof;
                n
            }
            ResponseBody::None => 0,
        };
        if r.done {
            sent += r.end_body(&mut c.out.head);
        } else if used > 0 {
            // What came so far goes out now, not when the upstream sends
            // more: a body that trickles reaches the client as it comes.
            if let Some(g) = r.gzip.as_deref_mut() {
                sent += g.flush_into(&mut c.out.head, chunked_out) as u64;
            }
        }
        self.sent += sent;
        self.from_up.consume(used);
        Ok(used > 0)
    }

    /// The upstream closed its side.
    pub(super) fn upstream_closed(&mut self, c: &mut Client) -> Result<bool, End> {
        if self.state == State::Tunnel {
            // The client gets what is still buffered, then the close.
            self.draining = true;
            return Ok(true);
        }
        match self.relay.as_mut() {
            None => Err(End::Failed(Failure::Error)),
            Some(r) if r.head.body == ResponseBody::Close && !r.done => {
                // The close ends the body: done once what is still buffered
                // has gone out (the relay finishes it otherwise).
                self.up_eof = true;
                if self.from_up.is_empty() {
                    r.done = true;
                    self.sent += r.end_body(&mut c.out.head);
                }
                Ok(true)
            }
            Some(_) if self.state == State::Tunnel => Err(End::Close),
            Some(r) if r.done => Ok(false),
            // Gone in the middle of a body: what arrived is passed on, then
            // the client's connection closes, so it cannot take the part
            // for a whole response.
            Some(_) => {
                self.up_eof = true;
                self.draining = true;
                Ok(true)
            }
        }
    }
}
