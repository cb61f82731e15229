package traffic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDialer dials TCP connections from inside a network namespace. Only
// socket(2) needs to run in the namespace: a socket belongs for life to the
// namespace it was made in, so its connect and all its I/O then run on any
// thread, through Go's netpoller, like any other connection.
//
// Host names are resolved in the caller's network.
type netnsDialer struct {
	reqs chan sockReq
	done chan struct{}
}

type sockReq struct {
	family int
	reply  chan sockReply
}

type sockReply struct {
	fd  int
	err error
}

func newNetnsDialer(path string) (*netnsDialer, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	d := &netnsDialer{reqs: make(chan sockReq), done: make(chan struct{})}
	ready := make(chan error, 1)
	go d.serve(ns, ready)
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("entering %s: %w", path, err)
	}
	return d, nil
}

// serve makes sockets on an OS thread that it moves into the namespace for
// good. It keeps the thread locked and never unlocks it: no other goroutine
// ever runs on a thread that is in the namespace, and when serve returns
// the Go runtime ends the thread instead of reusing it. The alternative,
// switching back and unlocking after each socket, costs two setns calls a
// socket, and if the switch back failed it would hand a thread in the
// wrong namespace to whatever goroutine runs next.
func (d *netnsDialer) serve(ns netns.NsHandle, ready chan<- error) {
	runtime.LockOSThread()
	err := netns.Set(ns)
	ns.Close()
	ready <- err
	if err != nil {
		return
	}
	for {
		select {
		case r := <-d.reqs:
			fd, err := unix.Socket(r.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
			r.reply <- sockReply{fd, err}
		case <-d.done:
			return
		}
	}
}

// close ends the namespace's thread; dials after it fail.
func (d *netnsDialer) close() { close(d.done) }

func (d *netnsDialer) socket(ctx context.Context, family int) (int, error) {
	reply := make(chan sockReply, 1)
	select {
	case d.reqs <- sockReq{family, reply}:
	case <-d.done:
		return -1, net.ErrClosed
	case <-ctx.Done():
		return -1, ctx.Err()
	}
	// socket(2) does not block, and waiting for the answer once the
	// request is taken is what keeps its descriptor from leaking.
	r := <-reply
	if r.err != nil {
		return -1, os.NewSyscallError("socket", r.err)
	}
	return r.fd, nil
}

// DialContext is an http.Transport's DialContext: it tries the host's
// addresses in turn.
func (d *netnsDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, service, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := net.DefaultResolver.LookupPort(ctx, network, service)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		ipNet := map[string]string{"tcp4": "ip4", "tcp6": "ip6"}[network]
		if ipNet == "" {
			ipNet = "ip"
		}
		if addrs, err = net.DefaultResolver.LookupNetIP(ctx, ipNet, host); err != nil {
			return nil, err
		}
	}
	var first error
	for _, ip := range addrs {
		c, err := d.dial(ctx, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

func (d *netnsDialer) dial(ctx context.Context, ap netip.AddrPort) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: err}
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(&unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()})
	if ap.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := d.socket(ctx, family)
	if err != nil {
		return nil, opErr(err)
	}
	// The descriptor is non-blocking, so the File is pollable: connect
	// waits on the netpoller, not on a thread.
	f := os.NewFile(uintptr(fd), "socket")
	defer f.Close() // FileConn keeps a duplicate
	if err := connect(ctx, f, sa); err != nil {
		return nil, opErr(err)
	}
	c, err := net.FileConn(f)
	if err != nil {
		return nil, opErr(err)
	}
	return c, nil
}

// connect connects f's socket to sa as the net package does: start a
// non-blocking connect, wait for the socket to be writable, read SO_ERROR.
func connect(ctx context.Context, f *os.File, sa unix.Sockaddr) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var connErr error
	if err := rc.Control(func(fd uintptr) { connErr = unix.Connect(int(fd), sa) }); err != nil {
		return err
	}
	switch connErr {
	case nil, unix.EISCONN:
		return nil
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
	default:
		return os.NewSyscallError("connect", connErr)
	}
	connErr = nil
	if deadline, ok := ctx.Deadline(); ok {
		_ = f.SetWriteDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	err = rc.Write(func(fd uintptr) bool {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			connErr = os.NewSyscallError("getsockopt", err)
			return true
		}
		switch e := syscall.Errno(v); e {
		case 0:
			// Connected, or woken before the connect finished.
			_, err := unix.Getpeername(int(fd))
			return err == nil
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
			return false
		default:
			connErr = os.NewSyscallError("connect", e)
			return true
		}
	})
	switch {
	case err == nil:
		return connErr
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
		return ctx.Err()
	}
	return err
}
