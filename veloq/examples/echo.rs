//! An echo server with a built-in load client.
//!
//! ```text
//! cargo run --release -p veloq --example echo -- [connections] [seconds]
//! ```
//!
//! Starts an echo server on a loopback port, then opens `connections`
//! (default 16) client connections that each send a 1 KiB message, wait
//! for its echo and repeat, for `seconds` (default 5). Prints the round
//! trips per second, each second and overall.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use veloq::net::{TcpListener, TcpStream};

const MESSAGE: usize = 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let connections: usize = parse_arg(args.next(), 16, "connections");
    let seconds: u64 = parse_arg(args.next(), 5, "seconds");

    let start = Instant::now();
    let total = veloq::block_on(run(connections, Duration::from_secs(seconds)));
    let rate = total as f64 / start.elapsed().as_secs_f64();
    println!("{connections} connections, {seconds}s: {total} round trips, {rate:.0} round trips/s");
}

fn parse_arg<T: std::str::FromStr>(arg: Option<String>, default: T, name: &str) -> T {
    match arg {
        None => default,
        Some(s) => s.parse().unwrap_or_else(|_| {
            eprintln!("usage: echo [connections] [seconds]  ({name}: {s:?} is not a number)");
            std::process::exit(2);
        }),
    }
}

async fn run(connections: usize, duration: Duration) -> u64 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    println!("echo server on {addr}");
    veloq::spawn(serve(listener));

    let count = Rc::new(Cell::new(0u64));
    let deadline = Instant::now() + duration;
    let clients: Vec<_> = (0..connections)
        .map(|_| veloq::spawn(client(addr, deadline, count.clone())))
        .collect();

    // Report once a second while the clients run.
    let mut tick = veloq::time::interval(Duration::from_secs(1));
    tick.tick().await; // the first tick is immediate
    let mut last = 0;
    while Instant::now() < deadline {
        tick.tick().await;
        let now = count.get();
        println!("{:>10} round trips/s", now - last);
        last = now;
    }
    for c in clients {
        c.await.expect("client task");
    }
    count.get()
}

async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                veloq::spawn(echo(stream));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

async fn echo(stream: TcpStream) {
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        buf.clear();
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = stream.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
    }
}

async fn client(addr: std::net::SocketAddr, deadline: Instant, count: Rc<Cell<u64>>) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("set_nodelay");
    let mut msg = vec![0x5a; MESSAGE];
    let mut reply = Vec::with_capacity(MESSAGE);
    while Instant::now() < deadline {
        let (res, m) = stream.write_all(msg).await;
        msg = m;
        res.expect("write");
        reply.clear();
        let (res, r) = stream.read_exact(reply).await;
        reply = r;
        res.expect("read");
        debug_assert_eq!(reply, msg);
        count.set(count.get() + 1);
    }
}
