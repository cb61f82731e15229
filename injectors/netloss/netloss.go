// Package netloss drops a share of a network namespace's packets, optionally
// only toward (or from) given peers, ports and protocol. It works through
// nftables over netlink: each fault owns one table named for it, and
// recovery deletes exactly that table, leaving every other table, rule and
// qdisc as it was. Delay and corruption need tc netem, which is used when
// the kernel has it and refused clearly when it does not.
//
// It knows nothing of Kubernetes: a node or a pod is just a network
// namespace path (/run/netns/NAME or /proc/PID/ns/net).
package netloss

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Direction says which packets are lost.
type Direction string

const (
	Egress  Direction = "egress"  // sent by the namespace (and forwarded out of it)
	Ingress Direction = "ingress" // received by the namespace (and forwarded into it)
	Both    Direction = "both"
)

// Protocol restricts the loss to one transport protocol.
type Protocol string

const (
	AnyProtocol Protocol = ""
	TCP         Protocol = "tcp"
	UDP         Protocol = "udp"
	ICMP        Protocol = "icmp"
)

// Spec is one network-loss fault.
type Spec struct {
	// ID names the fault; its nftables table is TablePrefix+ID.
	ID string
	// Netns is the path of the target network namespace; empty means the
	// caller's own.
	Netns string
	// LossPercent is the share of matching packets dropped, 0 to 100.
	LossPercent float64
	// Direction defaults to Both.
	Direction Direction
	// Peers restricts the loss to these remote networks (destination when
	// sending, source when receiving); empty means any peer.
	Peers []netip.Prefix
	// Ports restricts the loss to these remote ports; it needs TCP or UDP
	// (both when Protocol is empty).
	Ports    []uint16
	Protocol Protocol

	// Delay, Jitter and CorruptPercent need tc netem on Device.
	Delay, Jitter  time.Duration
	CorruptPercent float64
	Device         string

	// Deadline, when set, is when the kernel stops the loss by itself: the
	// rules match through a set whose one element times out then, so the
	// fault ends on time with no process alive (an agent killed and never
	// restarted). The table stays until Recover deletes it. netem's delay
	// and corruption have no such timeout: only Recover ends them.
	Deadline time.Time
}

// TablePrefix starts the name of every table this package makes.
const TablePrefix = "faultline-"

var idRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Validate names the first bad field and what is allowed.
func (s Spec) Validate() error {
	switch {
	case !idRE.MatchString(s.ID):
		return fmt.Errorf("id %q: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit", s.ID)
	case math.IsNaN(s.LossPercent) || s.LossPercent < 0 || s.LossPercent > 100:
		return fmt.Errorf("lossPercent %v: must be between 0 and 100", s.LossPercent)
	case s.Direction != "" && s.Direction != Egress && s.Direction != Ingress && s.Direction != Both:
		return fmt.Errorf("direction %q: must be egress, ingress or both", s.Direction)
	case s.Protocol != AnyProtocol && s.Protocol != TCP && s.Protocol != UDP && s.Protocol != ICMP:
		return fmt.Errorf("protocol %q: must be tcp, udp or icmp (or empty for any)", s.Protocol)
	case len(s.Ports) > 0 && s.Protocol == ICMP:
		return errors.New("ports: need protocol tcp or udp (or empty for both), not icmp")
	case math.IsNaN(s.CorruptPercent) || s.CorruptPercent < 0 || s.CorruptPercent > 100:
		return fmt.Errorf("corruptPercent %v: must be between 0 and 100", s.CorruptPercent)
	case s.Delay < 0 || s.Jitter < 0:
		return errors.New("delay and jitter: must not be negative")
	case s.Jitter > 0 && s.Delay == 0:
		return errors.New("jitter: needs a delay")
	}
	for _, p := range s.Ports {
		if p == 0 {
			return errors.New("ports: 0 is not a port; give 1-65535")
		}
	}
	for _, p := range s.Peers {
		if !p.IsValid() {
			return errors.New("peers: an invalid CIDR")
		}
	}
	if s.needsNetem() && s.Device == "" {
		return errors.New("device: delay and corruption are applied on a device; name it (for example eth0)")
	}
	return nil
}

func (s Spec) needsNetem() bool { return s.Delay > 0 || s.CorruptPercent > 0 }

// Table is the name of the fault's nftables table.
func (s Spec) Table() string { return TablePrefix + s.ID }

func (s Spec) direction() Direction {
	if s.Direction == "" {
		return Both
	}
	return s.Direction
}

// Inject installs the fault. Injecting the same fault twice is a no-op
// that leaves one table: the table is replaced as a whole, atomically.
func Inject(s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	var left time.Duration
	if !s.Deadline.IsZero() {
		// Read once: the element's timeout is the time left now. Checked
		// before anything is put in place, netem included.
		if left = time.Until(s.Deadline); left < time.Millisecond {
			return fmt.Errorf("deadline %s: passed already, nothing to inject", s.Deadline.Format(time.RFC3339Nano))
		}
	}
	if s.needsNetem() {
		if err := injectNetem(s); err != nil {
			return err
		}
	}
	return withConn(s.Netns, func(c *nftables.Conn) error {
		// Delete and recreate in one transaction so that a retry after a
		// crash never doubles the rules.
		if exists(c, s.Table()) {
			c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: s.Table()})
		}
		if err := build(c, s, left); err != nil {
			return fmt.Errorf("nftables table %s: %w", s.Table(), err)
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("install nftables table %s: %w", s.Table(), err)
		}
		return nil
	})
}

// Recover removes exactly what Inject added. It is idempotent: a fault
// that is already gone (or whose namespace is gone) is recovered.
func Recover(s Spec) error {
	var errs []error
	if s.needsNetem() {
		errs = append(errs, recoverNetem(s))
	}
	err := withConn(s.Netns, func(c *nftables.Conn) error {
		// Delete without asking first: a failed listing must not pass for
		// "already gone". Only the kernel's "no such table" is.
		c.DelTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: s.Table()})
		if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("delete nftables table %s: %w", s.Table(), err)
		}
		return nil
	})
	if errors.Is(err, errNoNamespace) {
		err = nil // the namespace, and the table with it, is gone
	}
	return errors.Join(append(errs, err)...)
}

// Verify reports whether the fault is in place.
func Verify(s Spec) (bool, error) {
	var ok bool
	err := withConn(s.Netns, func(c *nftables.Conn) error {
		ok = exists(c, s.Table())
		return nil
	})
	return ok, err
}

// Tables lists the fault tables present in a namespace, so that an agent
// can find faults its ledger lost track of.
func Tables(nsPath string) ([]string, error) {
	var out []string
	err := withConn(nsPath, func(c *nftables.Conn) error {
		ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if len(t.Name) > len(TablePrefix) && t.Name[:len(TablePrefix)] == TablePrefix {
				out = append(out, t.Name)
			}
		}
		return nil
	})
	return out, err
}

var errNoNamespace = errors.New("network namespace not found")

func withConn(nsPath string, f func(*nftables.Conn) error) error {
	var opts []nftables.ConnOption
	if nsPath != "" {
		ns, err := netns.GetFromPath(nsPath)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("%w: %s", errNoNamespace, nsPath)
			}
			return fmt.Errorf("open network namespace %s: %w", nsPath, err)
		}
		defer ns.Close()
		opts = append(opts, nftables.WithNetNSFd(int(ns)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return err
	}
	return f(c)
}

func exists(c *nftables.Conn, name string) bool {
	ts, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false
	}
	for _, t := range ts {
		if t.Name == name {
			return true
		}
	}
	return false
}

// DeadlineSet names the set of a fault's table whose one element times
// out at the fault's deadline; deadlineKey is that element.
const DeadlineSet = "deadline"

var deadlineKey = binaryutil.NativeEndian.PutUint32(1)

// build queues the fault's table: base chains on the hooks the direction
// needs, each sending matching packets to one "loss" chain that drops the
// share asked for and accepts the rest, so a packet is decided once even
// when several peers or ports match it. With a time left (above 0), the
// drop also needs the deadline set's element, which the kernel expires
// then: from that moment no packet is dropped, whoever is alive.
func build(c *nftables.Conn, s Spec, left time.Duration) error {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: s.Table()})
	loss := c.AddChain(&nftables.Chain{Name: "loss", Table: t})
	drop := lossExprs(s.LossPercent)
	if left > 0 {
		set := &nftables.Set{Table: t, Name: DeadlineSet, KeyType: nftables.TypeInteger, HasTimeout: true}
		if err := c.AddSet(set, []nftables.SetElement{{Key: deadlineKey, Timeout: left}}); err != nil {
			return err
		}
		drop = append([]expr.Any{
			&expr.Immediate{Register: 1, Data: deadlineKey},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		}, drop...)
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: loss, Exprs: drop})
	c.AddRule(&nftables.Rule{Table: t, Chain: loss, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}})

	// Run before ordinary filter chains: a drop anywhere wins, and an
	// earlier drop saves the later chains' work.
	prio := nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)
	hook := func(name string, h *nftables.ChainHook) *nftables.Chain {
		return c.AddChain(&nftables.Chain{Name: name, Table: t, Type: nftables.ChainTypeFilter, Hooknum: h, Priority: prio})
	}
	dir := s.direction()
	var out, in, fwd *nftables.Chain
	if dir != Ingress {
		out = hook("egress", nftables.ChainHookOutput)
	}
	if dir != Egress {
		in = hook("ingress", nftables.ChainHookInput)
	}
	fwd = hook("forward", nftables.ChainHookForward)
	for _, m := range matchers(s) {
		jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: "loss"}
		if out != nil {
			c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: append(m.exprs(true), jump)})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append(m.exprs(true), jump)})
		}
		if in != nil {
			c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: append(m.exprs(false), jump)})
			c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: append(m.exprs(false), jump)})
		}
	}
	return nil
}

// lossExprs drops a share of packets: a random number in [0, 10000) below
// the threshold means drop. nftables compares registers bytewise, so the
// host-order random number is turned big-endian first, as nft itself does.
func lossExprs(pct float64) []expr.Any {
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	switch {
	case pct >= 100:
		return []expr.Any{drop}
	case pct <= 0:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	}
	threshold := uint32(math.Round(pct * 100))
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: 10000, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(threshold)},
		drop,
	}
}

// matcher is one combination of peer, protocol and port.
type matcher struct {
	peer  netip.Prefix // invalid: any
	proto Protocol     // AnyProtocol: any
	port  uint16       // 0: any
}

func matchers(s Spec) []matcher {
	peers := s.Peers
	if len(peers) == 0 {
		peers = []netip.Prefix{{}}
	}
	protos := []Protocol{s.Protocol}
	if len(s.Ports) > 0 && s.Protocol == AnyProtocol {
		protos = []Protocol{TCP, UDP}
	}
	ports := s.Ports
	if len(ports) == 0 {
		ports = []uint16{0}
	}
	var out []matcher
	for _, pe := range peers {
		for _, pr := range protos {
			for _, po := range ports {
				out = append(out, matcher{peer: pe.Masked(), proto: pr, port: po})
			}
		}
	}
	return out
}

// exprs matches the remote end: the destination when sending, the source
// when receiving.
func (m matcher) exprs(sending bool) []expr.Any {
	var e []expr.Any
	if m.peer.IsValid() {
		v4 := m.peer.Addr().Is4()
		proto, off, n := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4)
		if !v4 {
			proto, off, n = unix.NFPROTO_IPV6, 8, 16
		}
		if sending {
			off += n
		}
		mask := make([]byte, n)
		for i := 0; i < m.peer.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m.peer.Addr().AsSlice()},
		)
	}
	if m.proto != AnyProtocol {
		l4 := map[Protocol]byte{TCP: unix.IPPROTO_TCP, UDP: unix.IPPROTO_UDP, ICMP: unix.IPPROTO_ICMP}[m.proto]
		e = append(e,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l4}},
		)
	}
	if m.port != 0 {
		off := uint32(0) // source port when receiving
		if sending {
			off = 2
		}
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(m.port)},
		)
	}
	return e
}
