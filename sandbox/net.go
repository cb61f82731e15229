package sandbox

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const netnsDir = "/run/netns"

func netnsPath(name string) string { return filepath.Join(netnsDir, name) }

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func addrOn(a netip.Addr, bits int) *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}}
}

// setupBridge creates the sandbox's bridge with the host's address on it
// and routes the sandbox's whole range there, so that no sandbox address
// (a ClusterIP nobody programmed yet, a simulated pod) follows the default
// route off the machine.
func (s *State) setupBridge(p Plan) error {
	name := p.BridgeName()
	if err := s.recordLink(name); err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge %s: %w", name, err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(link, addrOn(p.BridgeAddr(), 24)); err != nil {
		return fmt.Errorf("address %s on %s: %w", p.BridgeAddr(), name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return err
	}
	return netlink.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(p.Super), Scope: netlink.SCOPE_LINK})
}

// routeVia adds a host route for dst through a node's address on the bridge.
func routeVia(p Plan, dst netip.Prefix, gw netip.Addr) error {
	link, err := netlink.LinkByName(p.BridgeName())
	if err != nil {
		return err
	}
	err = netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(dst), Gw: gw.AsSlice()})
	if err != nil {
		return fmt.Errorf("route %s via %s: %w", dst, gw, err)
	}
	return nil
}

// nodeNet describes a node's network namespace.
type nodeNet struct {
	netns    string
	hostVeth string
	addr     netip.Addr
	// routes inside the namespace, each through a gateway on the link.
	routes  map[netip.Prefix]netip.Addr
	forward bool // the node routes for its pods
}

// setupNodeNet creates a named network namespace joined to the bridge by a
// veth pair. Inside, the link is eth0 with the node's address; lo is up;
// there is no default route, only the sandbox's range, so nothing a pod
// sends can leave the machine.
func (s *State) setupNodeNet(p Plan, n nodeNet) error {
	if err := s.recordNetns(n.netns); err != nil {
		return err
	}
	if err := s.recordLink(n.hostVeth); err != nil {
		return err
	}
	ns, err := newNamedNetns(n.netns)
	if err != nil {
		return fmt.Errorf("create network namespace %s: %w", n.netns, err)
	}
	defer ns.Close()

	br, err := netlink.LinkByName(p.BridgeName())
	if err != nil {
		return err
	}
	peer := n.hostVeth + "p"
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: n.hostVeth, MasterIndex: br.Attrs().Index}, PeerName: peer}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s: %w", n.hostVeth, err)
	}
	host, err := netlink.LinkByName(n.hostVeth)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return err
	}
	peerLink, err := netlink.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetNsFd(peerLink, int(ns)); err != nil {
		return err
	}

	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	inner, err := h.LinkByName(peer)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(inner, "eth0"); err != nil {
		return err
	}
	if err := h.AddrAdd(inner, addrOn(n.addr, 24)); err != nil {
		return err
	}
	if err := h.LinkSetUp(inner); err != nil {
		return err
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	for dst, gw := range n.routes {
		r := &netlink.Route{LinkIndex: inner.Attrs().Index, Dst: ipNet(dst), Gw: gw.AsSlice()}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("route %s via %s in %s: %w", dst, gw, n.netns, err)
		}
	}
	if n.forward {
		return inNetns(n.netns, func() error {
			for _, k := range []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet"} {
				if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0o644); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return nil
}

// sharedNetnsDir makes /run/netns a shared mount of its own, as `ip netns
// add` does the first time it runs. Otherwise the first `ip netns add`
// after the sandbox is up (a test's, an operator's) bind-mounts /run/netns
// over itself, hiding the sandbox's namespace mounts underneath: they can
// then be neither unmounted nor removed by their path.
func sharedNetnsDir() error {
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if !errors.Is(err, unix.EINVAL) {
		return err // nil: a mount point already, now shared
	}
	// Not a mount point yet: bind it onto itself first.
	if err := unix.Mount(netnsDir, netnsDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", netnsDir, err)
	}
	if err := unix.Mount("", netnsDir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("share %s: %w", netnsDir, err)
	}
	return nil
}

// newNamedNetns creates a named namespace without leaving the calling
// thread in it.
func newNamedNetns(name string) (netns.NsHandle, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return 0, err
	}
	defer orig.Close()
	if err := sharedNetnsDir(); err != nil {
		return 0, err
	}
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// This thread must not go back to the pool in the wrong namespace.
		panic(fmt.Sprintf("cannot return to the host network namespace: %v", serr))
	}
	return ns, err
}

// inNetns runs f on a thread that is inside the named namespace.
func inNetns(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		return err
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		panic(fmt.Sprintf("cannot return to the host network namespace: %v", err))
	}
	return ferr
}

// deleteLink removes a link by name; a missing link is not an error.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	// A veth goes by itself when its peer's namespace is deleted; losing
	// that race is success.
	if err := netlink.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete link %s: %w", name, err)
	}
	return nil
}

// deleteNetns removes a named namespace; a missing one is not an error.
func deleteNetns(name string) error {
	p := netnsPath(name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}
