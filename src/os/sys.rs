//! Every call into libc that std has no safe form for, in one place, with a
//! safe wrapper each: signal handlers, the socket options of `socket`,
//! `recvmsg`/`sendmsg` with packet info (the address a datagram came to,
//! which acknowledgements go out from), `recvmmsg`/`sendmmsg` (the relay's
//! batches), and whether standard output was open when the program started.
//!
//! Linux only. The constants are those of the generic Linux ABI
//! (include/uapi/asm-generic/{socket,errno-base,errno,signal}.h, linux/in6.h,
//! bits/fcntl-linux.h), which both x86_64 and aarch64 use; mips, alpha,
//! sparc and parisc differ, hence the `compile_error!` for them.

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("src/os/sys.rs: constants are checked for x86_64 and aarch64 Linux only");

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicU8, Ordering};

pub const SIGINT: i32 = 2;
pub const SIGTERM: i32 = 15;

const SIG_DFL: usize = 0;
/// `(void (*)(int)) -1`.
const SIG_ERR: usize = usize::MAX;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
const SOCK_DGRAM: i32 = 2;
/// O_CLOEXEC: 02000000 on x86_64 and aarch64 alike.
const SOCK_CLOEXEC: i32 = 0o2_000_000;
const SOL_SOCKET: i32 = 1;
const SO_RCVBUF: i32 = 8;
const SO_REUSEPORT: i32 = 15;
const SO_ATTACH_REUSEPORT_CBPF: i32 = 51;
const MSG_DONTWAIT: i32 = 0x40;
const IPPROTO_IPV6: i32 = 41;
const IPV6_V6ONLY: i32 = 26;
const F_GETFD: i32 = 1;

const EBADF: i32 = 9;
pub const EAFNOSUPPORT: i32 = 97;

/// `struct sockaddr_in`; the port and address in network byte order.
#[repr(C)]
pub struct SockaddrIn {
    pub family: u16,
    pub port: [u8; 2],
    pub addr: [u8; 4],
    pub zero: [u8; 8],
}

/// `struct sockaddr_in6`.
#[repr(C)]
pub struct SockaddrIn6 {
    pub family: u16,
    pub port: [u8; 2],
    pub flowinfo: u32,
    pub addr: [u8; 16],
    pub scope_id: u32,
}

/// Room for either: where the kernel writes a datagram's source.
pub const SOCKADDR_LEN: usize = std::mem::size_of::<SockaddrIn6>();

/// `struct cmsghdr`: a control message's length (header included), level
/// and type; its data follows.
#[repr(C)]
pub struct Cmsghdr {
    pub len: usize,
    pub level: i32,
    pub kind: i32,
}

/// `struct in_pktinfo`: the interface, the source to send from
/// (`spec_dst`), the destination a datagram came to (`addr`).
#[repr(C)]
pub struct InPktinfo {
    pub ifindex: i32,
    pub spec_dst: [u8; 4],
    pub addr: [u8; 4],
}

/// `struct in6_pktinfo`: the address (source or destination), interface.
#[repr(C)]
pub struct In6Pktinfo {
    pub addr: [u8; 16],
    pub ifindex: u32,
}

// The kernel's layouts (include/uapi/linux/in.h, in6.h, socket.h).
const _: () = assert!(std::mem::size_of::<SockaddrIn>() == 16);
const _: () = assert!(std::mem::offset_of!(SockaddrIn, addr) == 4);
const _: () = assert!(SOCKADDR_LEN == 28);
const _: () = assert!(std::mem::offset_of!(SockaddrIn6, flowinfo) == 4);
const _: () = assert!(std::mem::offset_of!(SockaddrIn6, addr) == 8);
const _: () = assert!(std::mem::offset_of!(SockaddrIn6, scope_id) == 24);
const _: () = assert!(std::mem::size_of::<Cmsghdr>() == 16);
const _: () = assert!(std::mem::size_of::<InPktinfo>() == 12);
const _: () = assert!(std::mem::size_of::<In6Pktinfo>() == 20);

/// Types whose every byte is a field (no padding) and any bytes a valid
/// value: they can be read from and written as plain bytes.
///
/// # Safety
/// Only for `repr(C)` structs of integers and byte arrays without padding.
pub unsafe trait Plain: Sized {}

// SAFETY: repr(C), integers and byte arrays, sizes asserted above equal
// the sums of their fields (no padding).
unsafe impl Plain for SockaddrIn {}
// SAFETY: as above.
unsafe impl Plain for SockaddrIn6 {}
// SAFETY: as above.
unsafe impl Plain for Cmsghdr {}
// SAFETY: as above.
unsafe impl Plain for InPktinfo {}
// SAFETY: as above.
unsafe impl Plain for In6Pktinfo {}

/// The bytes of `value`, as the kernel reads them.
pub fn as_bytes<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: T is Plain: all of its size_of bytes are initialized fields.
    unsafe { std::slice::from_raw_parts((value as *const T).cast(), std::mem::size_of::<T>()) }
}

/// A `T` from the start of `bytes` (any alignment); None if too short.
pub fn from_bytes<T: Plain>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < std::mem::size_of::<T>() {
        return None;
    }
    // SAFETY: enough bytes, read unaligned; any bytes are a valid Plain T.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
    fn getpid() -> i32;
    fn kill(pid: i32, signum: i32) -> i32;
    fn _exit(status: i32) -> !;
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
    fn socket(domain: i32, kind: i32, protocol: i32) -> i32;
    fn setsockopt(fd: i32, level: i32, name: i32, value: *const i32, len: u32) -> i32;
    fn getsockopt(fd: i32, level: i32, name: i32, value: *mut i32, len: *mut u32) -> i32;
    fn bind(fd: i32, addr: *const u8, len: u32) -> i32;
    fn recv(fd: i32, buf: *mut u8, len: usize, flags: i32) -> isize;
    fn if_nametoindex(name: *const std::ffi::c_char) -> u32;
}

fn check(result: i32) -> io::Result<i32> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Installs `handler` for `signum` (BSD semantics in glibc and musl: the
/// handler stays, interrupted calls restart unless a timeout is set).
pub fn set_signal_handler(signum: i32, handler: extern "C" fn(i32)) -> io::Result<()> {
    // SAFETY: signal() with a valid signal number and an extern "C"
    // function; the caller's handler must be async-signal-safe.
    let previous = unsafe { signal(signum, handler as usize) };
    if previous == SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// For use inside a signal handler (async-signal-safe). Outside PID 1:
/// resets `signum` to its default action and raises it again; blocked
/// while its handler runs, it is delivered, ending the process, as soon as
/// the handler returns, so the parent sees death by signal. As PID 1, where
/// the kernel drops signals that have no handler, or if a call fails:
/// exits at once with 128 + `signum`.
pub fn reraise_with_default_action(signum: i32) {
    // SAFETY: getpid, signal, kill and _exit are async-signal-safe.
    unsafe {
        let pid = getpid();
        if pid == 1 || signal(signum, SIG_DFL) == SIG_ERR || kill(pid, signum) != 0 {
            _exit(128 + signum);
        }
    }
}

/// Ends the process now with `code`: no destructors, no flushing, even
/// with other threads blocked in a call (a write to a full pipe).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing after it runs.
    unsafe { _exit(code) }
}

/// The index of the network interface `name` (`eth0`), None if there is
/// none of that name.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: the name is a NUL-terminated string that outlives the call.
    let index = unsafe { if_nametoindex(name.as_ptr().cast()) };
    (index != 0).then_some(index)
}

/// A UDP IPv6 socket bound to `[::]:port` that takes IPv4 too, whatever
/// `net.ipv6.bindv6only` says.
pub fn bind_dual_stack_udp(port: u16) -> io::Result<UdpSocket> {
    // SAFETY: socket() returns a new descriptor we own; it goes straight
    // into a UdpSocket, which closes it on every early return below.
    let sock = unsafe {
        let fd = check(socket(i32::from(AF_INET6), SOCK_DGRAM | SOCK_CLOEXEC, 0))?;
        UdpSocket::from_raw_fd(fd)
    };
    let fd = sock.as_raw_fd();
    let off = 0i32;
    // SAFETY: the value points to an i32 of the length given.
    check(unsafe { setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, 4) })?;
    let addr = SockaddrIn6 {
        family: AF_INET6,
        port: port.to_be_bytes(),
        flowinfo: 0,
        addr: [0; 16],
        scope_id: 0,
    };
    let len = std::mem::size_of::<SockaddrIn6>() as u32;
    // SAFETY: addr is a valid sockaddr_in6 of `len` bytes.
    check(unsafe { bind(fd, (&addr as *const SockaddrIn6).cast(), len) })?;
    Ok(sock)
}

/// A UDP socket bound to `addr` with SO_REUSEPORT, so that more sockets of
/// this process can share the port (the relay's listen socket and its
/// connected per-pod sockets, whose copies then come from the listen
/// port). `[::]` is dual-stack; an IPv6 socket reaches IPv4 peers mapped.
pub fn bind_udp_reuse_port(addr: SocketAddr) -> io::Result<UdpSocket> {
    let v6 = addr.is_ipv6();
    let domain = i32::from(if v6 { AF_INET6 } else { AF_INET });
    // SAFETY: as in bind_dual_stack_udp.
    let sock = unsafe {
        let fd = check(socket(domain, SOCK_DGRAM | SOCK_CLOEXEC, 0))?;
        UdpSocket::from_raw_fd(fd)
    };
    let fd = sock.as_raw_fd();
    let (on, off) = (1i32, 0i32);
    // SAFETY: the values point to i32s of the length given.
    check(unsafe { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, 4) })?;
    if v6 {
        check(unsafe { setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, 4) })?;
    }
    let name = crate::os::pktinfo::encode_sockaddr(addr, v6);
    // SAFETY: name holds a valid sockaddr of its length.
    check(unsafe { bind(fd, name.as_ptr(), name.len() as u32) })?;
    Ok(sock)
}

/// `struct sock_filter` and `struct sock_fprog` of classic BPF (also the
/// tests' seccomp filter).
#[repr(C)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

#[repr(C)]
pub struct SockFprog {
    pub len: u16,
    pub filter: *const SockFilter,
}

/// Makes `sock`, the first bound of its SO_REUSEPORT group, the one that
/// gets every datagram no connected member matches (a program that
/// returns index 0). Without it the kernel may pick a member that is
/// bound but not connected yet, and the datagram waits there.
pub fn reuse_port_to_first(sock: &UdpSocket) -> io::Result<()> {
    const BPF_RET_K: u16 = 0x06;
    let program = [SockFilter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let fprog = SockFprog {
        len: 1,
        filter: program.as_ptr(),
    };
    let len = std::mem::size_of::<SockFprog>() as u32;
    // SAFETY: fprog points at a valid program of `len` instructions,
    // which the kernel copies during the call.
    check(unsafe {
        setsockopt(
            sock.as_raw_fd(),
            SOL_SOCKET,
            SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const SockFprog).cast(),
            len,
        )
    })?;
    Ok(())
}

/// One datagram already queued on `sock`, without waiting (MSG_DONTWAIT:
/// the socket itself stays blocking for its sends).
pub fn recv_now(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is a live buffer of the length given.
    let n = unsafe { recv(sock.as_raw_fd(), buf.as_mut_ptr(), buf.len(), MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Sets SO_RCVBUF to `bytes` and returns what the kernel reports back
/// (double what it grants, to cover its bookkeeping).
pub fn set_receive_buffer(sock: &UdpSocket, bytes: i32) -> io::Result<i32> {
    let fd = sock.as_raw_fd();
    let mut granted = 0i32;
    let mut len = 4u32;
    // SAFETY: value pointers are valid i32s with their true length.
    unsafe {
        check(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, 4))?;
        check(getsockopt(
            fd,
            SOL_SOCKET,
            SO_RCVBUF,
            &mut granted,
            &mut len,
        ))?;
    }
    Ok(granted)
}

// Receiving with the destination address, answering from it (os/pktinfo.rs).
pub const SOL_IP: i32 = 0;
pub const IP_PKTINFO: i32 = 8;
pub const SOL_IPV6: i32 = IPPROTO_IPV6;
const IPV6_RECVPKTINFO: i32 = 49;
pub const IPV6_PKTINFO: i32 = 50;

/// `struct iovec` and `struct msghdr` (glibc's; musl's pads its int
/// lengths to the same size and place on little-endian 64-bit).
#[repr(C)]
struct Iovec {
    base: *mut u8,
    len: usize,
}

#[repr(C)]
struct Msghdr {
    name: *mut u8,
    namelen: u32,
    iov: *mut Iovec,
    iovlen: usize,
    control: *mut u8,
    controllen: usize,
    flags: i32,
}

const _: () = assert!(std::mem::size_of::<Msghdr>() == 56);

extern "C" {
    fn recvmsg(fd: i32, msg: *mut Msghdr, flags: i32) -> isize;
    fn sendmsg(fd: i32, msg: *const Msghdr, flags: i32) -> isize;
}

/// Asks the kernel for each datagram's destination address: IP_PKTINFO
/// and IPV6_RECVPKTINFO, as a dual-stack socket gets both families. Ok if
/// the socket took either (an IPv4 socket has no IPv6 options).
pub fn enable_pktinfo(sock: &UdpSocket) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let on = 1i32;
    // SAFETY: the value points to an i32 of the length given.
    let v4 = unsafe { setsockopt(fd, SOL_IP, IP_PKTINFO, &on, 4) };
    // SAFETY: as above.
    let v6 = unsafe { setsockopt(fd, SOL_IPV6, IPV6_RECVPKTINFO, &on, 4) };
    if v4 == 0 || v6 == 0 {
        return Ok(());
    }
    Err(io::Error::last_os_error())
}

/// recvmsg(2) into `buf`, the source's sockaddr into `name` and control
/// messages into `control`; returns the lengths of the three.
pub fn recv_msg(
    sock: &UdpSocket,
    buf: &mut [u8],
    name: &mut [u8],
    control: &mut [u64],
) -> io::Result<(usize, usize, usize)> {
    let mut iov = Iovec {
        base: buf.as_mut_ptr(),
        len: buf.len(),
    };
    let mut msg = Msghdr {
        name: name.as_mut_ptr(),
        namelen: name.len() as u32,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_mut_ptr().cast(),
        controllen: std::mem::size_of_val(control),
        flags: 0,
    };
    // SAFETY: every pointer in msg points at a live buffer of the length
    // given beside it, and nothing else uses them during the call.
    let len = unsafe { recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let name_len = (msg.namelen as usize).min(name.len());
    let control_len = msg.controllen.min(std::mem::size_of_val(control));
    Ok((len as usize, name_len, control_len))
}

/// sendmsg(2) of `data` to the sockaddr `name`, with control messages
/// `control` (of `control_len` bytes).
pub fn send_msg(
    sock: &UdpSocket,
    data: &[u8],
    name: &[u8],
    control: &[u64],
    control_len: usize,
) -> io::Result<usize> {
    let mut iov = Iovec {
        base: data.as_ptr().cast_mut(),
        len: data.len(),
    };
    let msg = Msghdr {
        name: name.as_ptr().cast_mut(),
        namelen: name.len() as u32,
        iov: &mut iov,
        iovlen: 1,
        control: control.as_ptr().cast_mut().cast(),
        controllen: control_len.min(std::mem::size_of_val(control)),
        flags: 0,
    };
    // SAFETY: as in recv_msg; sendmsg only reads the buffers.
    let sent = unsafe { sendmsg(sock.as_raw_fd(), &msg, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// `struct mmsghdr`: a msghdr and the length the kernel sent or received,
/// padded to 64 bytes.
#[repr(C)]
struct Mmsghdr {
    hdr: Msghdr,
    len: u32,
}

const _: () = assert!(std::mem::size_of::<Mmsghdr>() == 64);
const _: () = assert!(std::mem::offset_of!(Mmsghdr, len) == 56);
const _: () = assert!(std::mem::offset_of!(Msghdr, iov) == 16);
const _: () = assert!(std::mem::offset_of!(Msghdr, flags) == 48);

impl Iovec {
    const EMPTY: Iovec = Iovec {
        base: std::ptr::null_mut(),
        len: 0,
    };
}

impl Mmsghdr {
    /// One buffer (`iov`, to be set), no address, no control messages.
    const EMPTY: Mmsghdr = Mmsghdr {
        hdr: Msghdr {
            name: std::ptr::null_mut(),
            namelen: 0,
            iov: std::ptr::null_mut(),
            iovlen: 1,
            control: std::ptr::null_mut(),
            controllen: 0,
            flags: 0,
        },
        len: 0,
    };
}

const MSG_WAITFORONE: i32 = 0x10000;
#[cfg(target_arch = "x86_64")]
const SYS_SENDMMSG: i64 = 307;
#[cfg(target_arch = "aarch64")]
const SYS_SENDMMSG: i64 = 269;

/// The most datagrams one `recv_many` or `send_many` handles.
pub const MAX_BATCH: usize = 64;

extern "C" {
    fn recvmmsg(fd: i32, msgs: *mut Mmsghdr, vlen: u32, flags: i32, timeout: *mut u8) -> i32;
    fn syscall(number: i64, ...) -> i64;
}

/// recvmmsg(2) with MSG_WAITFORONE: waits for one datagram as `recv`
/// does (the socket's timeout applies), then takes those already queued,
/// one per `slot`-byte chunk of `buf` (at most MAX_BATCH). Each one's length
/// and source sockaddr go into `lens` and `names`; returns how many.
pub fn recv_many(
    sock: &UdpSocket,
    buf: &mut [u8],
    slot: usize,
    names: &mut [[u8; SOCKADDR_LEN]],
    lens: &mut [usize],
) -> io::Result<usize> {
    debug_assert!(slot > 0, "recv_many: a slot of 0 bytes");
    let count = (buf.len() / slot)
        .min(names.len())
        .min(lens.len())
        .min(MAX_BATCH);
    let mut iovs: [Iovec; MAX_BATCH] = std::array::from_fn(|_| Iovec::EMPTY);
    let mut msgs: [Mmsghdr; MAX_BATCH] = std::array::from_fn(|_| Mmsghdr::EMPTY);
    for (i, chunk) in buf.chunks_exact_mut(slot).take(count).enumerate() {
        iovs[i] = Iovec {
            base: chunk.as_mut_ptr(),
            len: slot,
        };
        msgs[i].hdr.iov = &mut iovs[i];
        msgs[i].hdr.name = names[i].as_mut_ptr();
        msgs[i].hdr.namelen = SOCKADDR_LEN as u32;
    }
    // SAFETY: the first `count` messages point at live, distinct buffers
    // of the lengths given, which nothing else uses during the call.
    let got = unsafe {
        recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as u32,
            MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    for (len, msg) in lens.iter_mut().zip(&msgs[..got]) {
        *len = msg.len as usize;
    }
    Ok(got)
}

/// sendmmsg(2) of `datagrams` (at most MAX_BATCH) on a connected socket.
/// Like the kernel: an error only if the first one failed; a count short
/// of `datagrams.len()` when a later one failed, whose error is not
/// reported. The system call itself: musl's `sendmmsg` is a loop of
/// `sendmsg` on 64-bit, one call per datagram.
pub fn send_many(sock: &UdpSocket, datagrams: &[&[u8]]) -> io::Result<usize> {
    debug_assert!(
        datagrams.len() <= MAX_BATCH,
        "send_many: more than MAX_BATCH"
    );
    let count = datagrams.len().min(MAX_BATCH);
    let mut iovs: [Iovec; MAX_BATCH] = std::array::from_fn(|_| Iovec::EMPTY);
    let mut msgs: [Mmsghdr; MAX_BATCH] = std::array::from_fn(|_| Mmsghdr::EMPTY);
    for (i, data) in datagrams.iter().take(count).enumerate() {
        iovs[i] = Iovec {
            base: data.as_ptr().cast_mut(),
            len: data.len(),
        };
        msgs[i].hdr.iov = &mut iovs[i];
    }
    // SAFETY: the first `count` messages point at live buffers of the
    // lengths given; the kernel only reads them and writes `len`.
    let sent = unsafe {
        syscall(
            SYS_SENDMMSG,
            sock.as_raw_fd() as i64,
            msgs.as_mut_ptr(),
            count as i64,
            0i64,
        )
    };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

// For the benchmark's helpers and the tests (examples/, tests/): the same
// vocabulary, not an `extern "C"` block of their own.

const SC_CLK_TCK: i32 = 2;

extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// kill(2).
pub fn send_signal(pid: i32, signum: i32) -> io::Result<()> {
    // SAFETY: a plain system call, no pointers.
    check(unsafe { kill(pid, signum) }).map(drop)
}

/// The clock ticks of /proc/PID/stat's times, per second.
pub fn clock_ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf reads a constant; no pointers.
    u64::try_from(unsafe { sysconf(SC_CLK_TCK) })
        .ok()
        .filter(|&t| t > 0)
}

/// What `note_closed_stdout` saw: `NOT_RUN` until it runs.
static STDOUT_AT_START: AtomicU8 = AtomicU8::new(NOT_RUN);
const NOT_RUN: u8 = 0;
const OPEN: u8 = 1;
const CLOSED: u8 = 2;

/// Runs before `main` and before std's runtime init, which opens /dev/null
/// on a closed fd 0, 1 or 2: after that, `sender >&-` would write its log
/// into /dev/null without a word.
extern "C" fn note_closed_stdout() {
    // SAFETY: fcntl(F_GETFD) only asks about the descriptor.
    let closed = unsafe { fcntl(1, F_GETFD) } == -1
        && io::Error::last_os_error().raw_os_error() == Some(EBADF);
    let state = if closed { CLOSED } else { OPEN };
    STDOUT_AT_START.store(state, Ordering::Relaxed);
}

#[used]
#[link_section = ".init_array"]
static NOTE_CLOSED_STDOUT: extern "C" fn() = note_closed_stdout;

/// Whether fd 1 was closed when the program started (`>&-`).
pub fn stdout_was_closed() -> bool {
    STDOUT_AT_START.load(Ordering::Relaxed) == CLOSED
}

/// `struct pollfd`.
#[repr(C)]
pub struct PollFd {
    pub fd: i32,
    pub events: i16,
    pub revents: i16,
}

pub const POLLIN: i16 = 0x1;
pub const POLLOUT: i16 = 0x4;

extern "C" {
    #[link_name = "poll"]
    fn c_poll(fds: *mut PollFd, nfds: u64, timeout: i32) -> i32;
}

/// Waits until one of `fds` is ready or `timeout` passes (`None`: no
/// limit); returns how many are ready. A signal ends the wait early with
/// `ErrorKind::Interrupted`.
pub fn poll(fds: &mut [PollFd], timeout: Option<std::time::Duration>) -> io::Result<usize> {
    // Rounded up, so a wait never ends just before a deadline and spins.
    let ms = timeout.map_or(-1, |t| {
        i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX)
    });
    // SAFETY: `fds` is a valid, exclusively borrowed array of `struct
    // pollfd` of `fds.len()` entries for the duration of the call.
    let n = check(unsafe { c_poll(fds.as_mut_ptr(), fds.len() as u64, ms) })?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel reads our sockaddr_in6 (bind) and writes its own into
    /// ours (recvmsg): both agree with std's view of the same sockets.
    #[test]
    fn sockaddr_in6_is_the_kernels() {
        let port = UdpSocket::bind("[::1]:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let sock = bind_dual_stack_udp(port).unwrap();
        assert_eq!(
            sock.local_addr().unwrap(),
            format!("[::]:{port}").parse().unwrap()
        );
        let client = UdpSocket::bind("[::1]:0").unwrap();
        client.send_to(b"x", ("::1", port)).unwrap();
        let (mut buf, mut name, mut control) = ([0; 8], [0; SOCKADDR_LEN], [0u64; 8]);
        let (_, name_len, _) = recv_msg(&sock, &mut buf, &mut name, &mut control).unwrap();
        assert_eq!(name_len, SOCKADDR_LEN);
        let got: SockaddrIn6 = from_bytes(&name).unwrap();
        let std::net::SocketAddr::V6(want) = client.local_addr().unwrap() else {
            panic!("an IPv6 client");
        };
        assert_eq!(got.family, AF_INET6);
        assert_eq!(u16::from_be_bytes(got.port), want.port());
        assert_eq!(got.addr, want.ip().octets());
        assert_eq!((got.flowinfo, got.scope_id), (0, 0));
    }

    #[test]
    fn send_many_and_recv_many_keep_each_datagram() {
        let pod = UdpSocket::bind("127.0.0.1:0").unwrap();
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        relay.connect(pod.local_addr().unwrap()).unwrap();
        let datagrams: [&[u8]; 3] = [b"one", b"", b"three"];
        assert_eq!(send_many(&relay, &datagrams).unwrap(), 3);
        let (mut buf, mut names, mut lens) = (vec![0u8; 4 * 16], [[0u8; SOCKADDR_LEN]; 4], [0; 4]);
        let mut got = vec![];
        while got.len() < 3 {
            let n = recv_many(&pod, &mut buf, 16, &mut names, &mut lens).unwrap();
            for (i, &len) in lens[..n].iter().enumerate() {
                got.push(buf[i * 16..i * 16 + len].to_vec());
                let port = u16::from_be_bytes([names[i][2], names[i][3]]);
                assert_eq!(port, relay.local_addr().unwrap().port());
            }
        }
        assert_eq!(got, datagrams);
    }

    #[test]
    fn receive_buffer_round_trip() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(set_receive_buffer(&sock, 65536).unwrap(), 2 * 65536);
    }

    #[test]
    fn a_bad_signal_number_is_an_error() {
        extern "C" fn nothing(_: i32) {}
        let e = set_signal_handler(65, nothing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // SIGKILL cannot be caught.
        assert!(set_signal_handler(9, nothing).is_err());
    }

    /// The hook ran before main (not merely: the flag was never set).
    #[test]
    fn stdout_of_the_test_harness_was_open() {
        assert_eq!(STDOUT_AT_START.load(Ordering::Relaxed), OPEN);
    }

    #[test]
    fn poll_sees_a_socket_become_readable() {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut fds = [PollFd {
            fd: sock.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        }];
        let wait = Some(std::time::Duration::from_millis(1));
        assert_eq!(poll(&mut fds, wait).unwrap(), 0);
        assert_eq!(fds[0].revents, 0);
        sock.send_to(b"x", sock.local_addr().unwrap()).unwrap();
        assert_eq!(poll(&mut fds, None).unwrap(), 1);
        assert_eq!(fds[0].revents, POLLIN);
    }
}
