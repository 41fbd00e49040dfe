//! One worker thread: an epoll instance, its listeners, a slab of
//! connections and a timer wheel. Nothing here is shared with other
//! workers but the [`Shared`] state behind an `Arc`.

use super::conn::{Conn, Next};
use super::ctx::{Ctx, Shared};
use super::probe::Prober;
use crate::net::sys::{self, ListenSocket, Stream, Wake};
use crate::net::{Event, Events, Poller, TimerWheel, Token, next_generation};
use crate::routing::{ConnectionLimits, Peer, canonical};
use crate::upstream::Endpoint;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How often a worker that stopped accepting (out of descriptors) looks
/// again.
const PAUSE_CHECK: Duration = Duration::from_millis(100);
/// Deadlines run in one loop turn at most.
const EXPIRE_BATCH: usize = 256;
/// Connections picked to give way in one scan of the slab.
const SHED_BATCH: usize = 64;
/// The answer to a connection past `max_connections` that nobody could
/// make room for.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\nRetry-After: 1\r\n\r\nserver out of slots\n";

/// What the reloader tells a worker (followed by a wake-up).
pub enum Command {
    /// Listen sockets to start accepting on, and addresses to stop.
    Listeners {
        /// New addresses with this worker's socket for each.
        add: Vec<(Endpoint, ListenSocket)>,
        /// Addresses gone from the config.
        remove: Vec<Endpoint>,
    },
}

/// A slab slot: its connection and a generation that changes every time
/// the slot is reused, so a stale event for an old connection is dropped.
struct Slot {
    generation: u32,
    conn: Option<Conn>,
}

/// One event loop.
pub struct Worker {
    poller: Arc<Poller>,
    buffer: Events,
    /// Listen sockets by slot (a slot's index is its token; removed ones
    /// leave a hole so that other tokens stay valid).
    listeners: Vec<Option<(Endpoint, ListenSocket)>>,
    /// Changes from the reloader.
    commands: Receiver<Command>,
    /// TCP listeners are shared with other workers (`EPOLLEXCLUSIVE`);
    /// Unix socket listeners always are.
    exclusive: bool,
    /// Listeners are out of the poller (out of descriptors) until then.
    paused: Option<Instant>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    live: usize,
    timers: TimerWheel,
    wake: Arc<Wake>,
    ctx: Ctx,
    events: Vec<Event>,
    expired: Vec<Token>,
    /// How far `expired` has been run.
    expired_pos: usize,
    stopping: bool,
    /// Active health checks (the first worker only).
    prober: Option<Prober>,
    /// Connections picked to give way when the server is full (slot and
    /// generation), the first to go last.
    victims: Vec<(usize, u32)>,
    /// The loop turn `victims` was collected in.
    victims_at: Option<Instant>,
    /// The loop turn of the last scan that found fewer than a batch.
    scanned_all_at: Option<Instant>,
    /// Accepting failed for want of descriptors or memory, and has not
    /// succeeded since (the log says so once per episode).
    starved: bool,
}

fn token(slot: usize, generation: u32) -> Token {
    Token::Client {
        slot: slot as u32,
        generation,
    }
}

/// The connection in `slot` if the slot still holds the one `generation`
/// names (a token for a slot reused since is stale).
fn live(slots: &mut [Slot], slot: usize, generation: u32) -> Option<&mut Conn> {
    match slots.get_mut(slot) {
        Some(Slot {
            generation: g,
            conn: Some(conn),
        }) if *g == generation => Some(conn),
        _ => None,
    }
}

fn listener_token(index: usize) -> Token {
    Token::Listener(index as u32)
}

/// Whether every worker accepts on this very socket (`EPOLLEXCLUSIVE`
/// then wakes one of them): all Unix sockets, and TCP ones unless each
/// worker has its own (`SO_REUSEPORT`).
fn shared_socket(socket: &ListenSocket, exclusive: bool) -> bool {
    exclusive || matches!(socket, ListenSocket::Unix(_))
}

/// Who a new connection is from and where it came in: the TCP addresses,
/// or a Unix socket client on the listener's path. `None` when the client
/// is gone already.
fn addresses(stream: &Stream, listen: &Endpoint) -> Option<(Peer, Endpoint)> {
    match stream {
        Stream::Tcp(s) => {
            let (peer, local) = (s.peer_addr().ok()?, s.local_addr().ok()?);
            Some((Peer::Inet(peer), Endpoint::Inet(canonical(local))))
        }
        Stream::Unix(_) => Some((Peer::Unix, listen.clone())),
    }
}

impl Worker {
    /// A worker accepting on `listeners`.
    pub fn new(
        listeners: Vec<(Endpoint, ListenSocket)>,
        commands: Receiver<Command>,
        exclusive: bool,
        shared: Arc<Shared>,
        wake: Arc<Wake>,
        index: usize,
    ) -> io::Result<Worker> {
        let probes = index == 0;
        let poller = Arc::new(Poller::new()?);
        poller.add_reader(wake.as_ref(), Token::Wake)?;
        for (i, (_, l)) in listeners.iter().enumerate() {
            poller.add_listener(l, listener_token(i), shared_socket(l, exclusive))?;
        }
        let ctx = Ctx::new(shared, poller.clone(), index);
        if let Some(watch) = ctx.files.watcher() {
            poller.add_reader(watch, Token::FilesChanged)?;
        }
        Ok(Worker {
            poller,
            buffer: Events::new(1024),
            listeners: listeners.into_iter().map(Some).collect(),
            commands,
            exclusive,
            paused: None,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: TimerWheel::new(Duration::from_millis(50)),
            wake,
            ctx,
            events: Vec::with_capacity(1024),
            expired: Vec::new(),
            expired_pos: 0,
            stopping: false,
            prober: probes.then(Prober::default),
            victims: Vec::new(),
            victims_at: None,
            scanned_all_at: None,
            starved: false,
        })
    }

    /// Runs until the server stops and every connection of this worker is
    /// done.
    pub fn run(mut self) {
        self.ctx
            .shared
            .metrics
            .set_tid(self.ctx.worker, crate::net::sys::thread_id());
        loop {
            let now = Instant::now();
            let mut timeout = self.timers.next_timeout(now);
            if self.expired_pos < self.expired.len() {
                // Deadlines left over from the last turn.
                timeout = Some(Duration::ZERO);
            }
            if let Some(until) = self.paused {
                let wait = until.saturating_duration_since(now) + Duration::from_millis(1);
                timeout = Some(timeout.map_or(wait, |t| t.min(wait)));
            }
            if let Some(due) = self.prober.as_ref().and_then(|p| p.next_due(now)) {
                // Rounded up, so the loop never wakes just before it.
                let wait = due.saturating_duration_since(now) + Duration::from_millis(1);
                timeout = Some(timeout.map_or(wait, |t| t.min(wait)));
            }
            self.events.clear();
            match self.poller.wait(&mut self.buffer, timeout) {
                Ok(events) => self.events.extend(events),
                Err(e) => {
                    crate::log::error(&format!("worker: epoll_wait failed: {e}"));
                    return;
                }
            }
            self.ctx.refresh();
            // Changed files first: a request that arrives with the news of
            // a save must not get the old file.
            if self.events.iter().any(|e| e.token == Token::FilesChanged) {
                self.ctx.files.invalidate();
            }
            for i in 0..self.events.len() {
                let ev = self.events[i];
                if ev.token != Token::FilesChanged {
                    self.dispatch(ev);
                }
            }
            self.expire();
            if let Some(prober) = self.prober.as_mut() {
                let snapshot = self.ctx.take_snapshot();
                prober.tick(&snapshot, self.ctx.now, &self.poller, &self.ctx.shared);
                self.ctx.snapshot = Some(snapshot);
            }
            if self.paused.is_some_and(|until| self.ctx.now >= until) {
                self.maybe_resume();
            }
            if self.stopping && self.live == 0 {
                return;
            }
        }
    }

    fn dispatch(&mut self, ev: Event) {
        let (token, upstream) = match ev.token {
            Token::Wake => {
                self.wake.clear();
                while let Ok(command) = self.commands.try_recv() {
                    self.apply(command);
                }
                if self.ctx.shared.stopping.load(Ordering::Acquire) && !self.stopping {
                    self.begin_stop();
                }
                return;
            }
            Token::FilesChanged => return, // handled before the others
            Token::Listener(i) => return self.accept(i as usize),
            Token::Probe(id) => {
                if let Some(prober) = self.prober.as_mut() {
                    prober.ready(id, &self.ctx.shared);
                }
                return;
            }
            // An upstream socket's event goes to the connection it serves.
            Token::Upstream { slot, generation } => {
                match self.ctx.sockets.owner(slot, generation) {
                    Some((_, Some(owner))) => (owner, true),
                    Some((id, None)) => {
                        // Idle in the pool: readable or hung up usually
                        // means the upstream closed it.
                        if ev.readable || ev.closed {
                            self.ctx
                                .upstream_pool
                                .evict(id, ev.closed, &mut self.ctx.sockets);
                        }
                        return;
                    }
                    None => return,
                }
            }
            client @ Token::Client { .. } => (client, false),
        };
        let Token::Client { slot, generation } = token else {
            return;
        };
        let slot = slot as usize;
        let next = match live(&mut self.slots, slot, generation) {
            Some(conn) => {
                if upstream {
                    conn.on_upstream_event(ev.readable, ev.writable, ev.closed, &mut self.ctx)
                } else {
                    conn.on_event(ev.readable, ev.writable, ev.closed, &mut self.ctx)
                }
            }
            None => return, // a stale event for a slot that was reused
        };
        self.after(slot, next);
    }

    fn after(&mut self, slot: usize, next: Next) {
        match next {
            Next::Close => self.close(slot),
            Next::Keep => self.arm(slot),
        }
    }

    /// Schedules the connection's deadline unless an earlier entry will
    /// already wake it.
    fn arm(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        let Some(conn) = s.conn.as_mut() else { return };
        if let Some(deadline) = conn.deadline {
            if conn.timer_at.is_none_or(|t| t > deadline) {
                self.timers.schedule(deadline, token(slot, s.generation));
                conn.timer_at = Some(deadline);
            }
        }
    }

    /// Runs the deadlines that passed, at most [`EXPIRE_BATCH`] per loop
    /// turn: when thousands of slow clients are cut at the same moment, the
    /// rest wait for the next turn (a zero-timeout poll), so the requests
    /// of everyone else are served in between.
    fn expire(&mut self) {
        let now = self.ctx.now;
        let mut expired = std::mem::take(&mut self.expired);
        if self.expired_pos >= expired.len() {
            expired.clear();
            self.expired_pos = 0;
            self.timers.expire(now, &mut expired);
        }
        let end = (self.expired_pos + EXPIRE_BATCH).min(expired.len());
        let batch = self.expired_pos..end;
        self.expired_pos = end;
        for &t in &expired[batch] {
            let Token::Client { slot, generation } = t else {
                continue;
            };
            let slot = slot as usize;
            let next = match live(&mut self.slots, slot, generation) {
                Some(conn) => {
                    conn.timer_at = None;
                    if conn.deadline.is_some_and(|d| d <= now) {
                        conn.on_timeout(&mut self.ctx)
                    } else {
                        Next::Keep
                    }
                }
                None => continue,
            };
            self.after(slot, next);
        }
        self.expired = expired;
    }

    // Kept out of `dispatch`, which runs for every event of every request.
    #[inline(never)]
    fn accept(&mut self, index: usize) {
        loop {
            if self.stopping {
                return;
            }
            let max = self.ctx.shared.snapshot.load().main.max_connections as usize;
            let Some(Some((addr, listener))) = self.listeners.get(index) else {
                return;
            };
            let accepted = sys::accept(listener).map(|s| {
                let who = addresses(&s, addr);
                (s, who)
            });
            match accepted {
                // Gone before it could be looked at.
                Ok((_, None)) => {}
                // Full: an idle or slow connection gives way; if none can,
                // the new one is told so and closed at once (never left
                // waiting in the backlog).
                Ok((stream, Some((_, local))))
                    if self.ctx.shared.connections.load(Ordering::Relaxed) >= max
                        && !self.shed_one() =>
                {
                    self.refuse(stream, &local)
                }
                Ok((stream, Some((peer, local)))) => {
                    if self.starved {
                        self.starved = false;
                        crate::log::info("accept: accepting new connections again");
                    }
                    self.add(stream, peer, local)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE)
                            | Some(libc::ENFILE)
                            | Some(libc::ENOMEM)
                            | Some(libc::ENOBUFS)
                    ) =>
                {
                    // Out of descriptors or memory: the pending connection
                    // stays in the backlog. The listeners leave the poller
                    // and are looked at again after a pause, so the loop
                    // never spins on an error that persists.
                    self.ctx.stats().accept_failed();
                    if !self.starved {
                        self.starved = true;
                        crate::log::warn(&format!(
                            "accept: {e}; pausing new connections (retrying every {} ms)",
                            PAUSE_CHECK.as_millis()
                        ));
                    }
                    self.pause();
                    return;
                }
                // ECONNABORTED and the like concern one connection only.
                Err(_) => continue,
            }
        }
    }

    /// Turns a connection away at once: `503` (not on a TCP proxy
    /// listener), then the close.
    fn refuse(&self, stream: Stream, local: &Endpoint) {
        let tcp_proxy = self.ctx.shared.snapshot.load().stream_for(local);
        if tcp_proxy.is_none() {
            // One write that fits any socket buffer; the close follows.
            let _ = (&stream).write(BUSY);
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        // What the client already sent is read first: closing with unread
        // bytes would send a reset, which can destroy the 503 before the
        // client reads it.
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            match (&stream).read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }

    /// Closes one connection that may give way (see [`Conn::shed_rank`]);
    /// `false` when none may.
    fn shed_one(&mut self) -> bool {
        let now = self.ctx.now;
        if self.victims_at != Some(now) {
            // Ranks change from one loop turn to the next.
            self.victims.clear();
        }
        loop {
            let Some((slot, generation)) = self.victims.pop() else {
                // A scan that found less than a batch found every candidate:
                // no other scan this turn would find more.
                if self.scanned_all_at == Some(now) {
                    return false;
                }
                self.collect_victims();
                self.victims_at = Some(now);
                if self.victims.len() < SHED_BATCH {
                    self.scanned_all_at = Some(now);
                }
                if self.victims.is_empty() {
                    return false;
                }
                continue;
            };
            let still = match &self.slots[slot] {
                Slot {
                    generation: g,
                    conn: Some(conn),
                } => *g == generation && conn.shed_rank(now).is_some(),
                _ => false,
            };
            if still {
                self.close(slot);
                return true;
            }
        }
    }

    /// One scan of the slab: the [`SHED_BATCH`] connections that give way
    /// first, the first to go at the end.
    fn collect_victims(&mut self) {
        let now = self.ctx.now;
        let mut ranked: Vec<((u8, u64), usize, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let rank = s.conn.as_ref()?.shed_rank(now)?;
                Some((rank, i, s.generation))
            })
            .collect();
        if ranked.len() > SHED_BATCH {
            ranked.select_nth_unstable(SHED_BATCH - 1);
            ranked.truncate(SHED_BATCH);
        }
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        self.victims.clear();
        self.victims
            .extend(ranked.into_iter().map(|(_, slot, g)| (slot, g)));
    }

    fn add(&mut self, stream: Stream, peer: Peer, local: Endpoint) {
        if let Stream::Tcp(s) = &stream {
            let _ = s.set_nodelay(true);
        }
        let snapshot = self.ctx.shared.snapshot.load_full();
        let stream_server = match snapshot.listener(&local) {
            Some(_) => None,
            None => snapshot.stream_for(&local),
        };
        if let Some(i) = stream_server {
            if !snapshot.streams[i].access.check(peer.ip()).0 {
                return; // denied: closed at once
            }
        }
        let limits = snapshot
            .listener(&local)
            .map(|l| snapshot.servers[l.server(None).0].connection.clone())
            .unwrap_or(ConnectionLimits {
                client_header_timeout: Duration::from_secs(10),
                keepalive_timeout: Duration::from_secs(75),
                keepalive_requests: 1000,
                client_header_max_size: 16 << 10,
                client_min_rate: Some(crate::routing::MinRate::DEFAULT),
            });
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 1,
                    conn: None,
                });
                self.slots.len() - 1
            }
        };
        let generation = self.slots[slot].generation;
        let conn = Conn::new(
            stream,
            peer,
            local,
            limits,
            token(slot, generation),
            self.ctx.now,
        );
        if self
            .poller
            .add_stream(conn.stream(), token(slot, generation))
            .is_err()
        {
            self.free.push(slot);
            return;
        }
        self.slots[slot].conn = Some(conn);
        self.live += 1;
        self.ctx.shared.connections.fetch_add(1, Ordering::Relaxed);
        self.ctx.stats().accepted();
        if let (Some(i), Some(conn)) = (stream_server, self.slots[slot].conn.as_mut()) {
            // A TCP proxy connection: relayed from the start.
            let next = if conn.start_stream(&snapshot, i, &mut self.ctx) {
                conn.drive(&mut self.ctx)
            } else {
                Next::Close
            };
            self.after(slot, next);
            return;
        }
        self.arm(slot);
    }

    fn close(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        if let Some(conn) = s.conn.take() {
            conn.release(&mut self.ctx);
            // Dropping the stream closes it, which also removes it from epoll.
            s.generation = next_generation(s.generation);
            self.free.push(slot);
            self.live -= 1;
            self.ctx.shared.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn pause(&mut self) {
        if self.paused.is_some() {
            return;
        }
        for (_, l) in self.listeners.iter().flatten() {
            let _ = self.poller.remove(l);
        }
        self.paused = Some(self.ctx.now + PAUSE_CHECK);
    }

    fn maybe_resume(&mut self) {
        if self.stopping {
            return;
        }
        for (i, slot) in self.listeners.iter().enumerate() {
            if let Some((_, l)) = slot {
                let shared = shared_socket(l, self.exclusive);
                let _ = self.poller.add_listener(l, listener_token(i), shared);
            }
        }
        self.paused = None;
    }

    /// Applies a change of listen sockets from a reload: new ones start
    /// accepting, removed ones close (their pending connections with them).
    fn apply(&mut self, command: Command) {
        match command {
            Command::Listeners { add, remove } => {
                for slot in self.listeners.iter_mut() {
                    if slot.as_ref().is_some_and(|(addr, _)| remove.contains(addr)) {
                        if let Some((_, l)) = slot.take() {
                            let _ = self.poller.remove(&l);
                        }
                    }
                }
                for (addr, socket) in add {
                    let index = match self.listeners.iter().position(Option::is_none) {
                        Some(i) => i,
                        None => {
                            self.listeners.push(None);
                            self.listeners.len() - 1
                        }
                    };
                    if self.stopping {
                        continue;
                    }
                    if self.paused.is_none() {
                        let shared = shared_socket(&socket, self.exclusive);
                        let _ = self
                            .poller
                            .add_listener(&socket, listener_token(index), shared);
                    }
                    self.listeners[index] = Some((addr, socket));
                }
            }
        }
    }

    /// Stops accepting (this worker's listener descriptors close now),
    /// closes idle connections and lets the others finish their response.
    fn begin_stop(&mut self) {
        self.stopping = true;
        self.paused = None;
        self.prober = None;
        self.ctx.stopping = true;
        self.listeners.clear();
        for slot in 0..self.slots.len() {
            let next = match self.slots[slot].conn.as_mut() {
                Some(conn) => conn.finish_and_close(&mut self.ctx),
                None => continue,
            };
            self.after(slot, next);
        }
    }
}
