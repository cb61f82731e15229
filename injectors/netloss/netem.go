package netloss

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netemHandle marks the root qdisc as this package's, so recovery removes
// only a qdisc it added ("fa17:" for faultline).
var netemHandle = netlink.MakeHandle(0xfa17, 0)

// ErrNoNetem is returned when the kernel lacks sch_netem.
var ErrNoNetem = errors.New("this kernel has no tc netem (sch_netem): delay and corruption are unavailable here; packet loss works without it, through nftables")

func netlinkHandle(nsPath string) (*netlink.Handle, error) {
	if nsPath == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%w: %s", errNoNamespace, nsPath)
		}
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

func injectNetem(s Spec) error {
	h, err := netlinkHandle(s.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(s.Device)
	if err != nil {
		return fmt.Errorf("device %q: %w", s.Device, err)
	}
	qs, err := h.QdiscList(link)
	if err != nil {
		return err
	}
	for _, q := range qs {
		a := q.Attrs()
		if a.Parent == netlink.HANDLE_ROOT && a.Handle != netemHandle && q.Type() != "noqueue" && q.Type() != "pfifo_fast" && q.Type() != "mq" && q.Type() != "fq_codel" {
			// Replacing someone's root qdisc would destroy their setup.
			return fmt.Errorf("device %q already has a %s root qdisc of its own; faultline will not replace it", s.Device, q.Type())
		}
	}
	q := netlink.NewNetem(netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netemHandle, Parent: netlink.HANDLE_ROOT},
		netlink.NetemQdiscAttrs{
			Latency:     uint32(s.Delay.Microseconds()),
			Jitter:      uint32(s.Jitter.Microseconds()),
			CorruptProb: float32(s.CorruptPercent),
		})
	if err := h.QdiscReplace(q); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w (%v)", ErrNoNetem, err)
		}
		return fmt.Errorf("add netem on %s: %w", s.Device, err)
	}
	return nil
}

func recoverNetem(s Spec) error {
	h, err := netlinkHandle(s.Netns)
	if errors.Is(err, errNoNamespace) {
		return nil
	}
	if err != nil {
		return err
	}
	defer h.Close()
	link, err := h.LinkByName(s.Device)
	if err != nil {
		return nil // the device, and its qdisc, is gone
	}
	qs, err := h.QdiscList(link)
	if err != nil {
		return err
	}
	for _, q := range qs {
		if q.Attrs().Handle == netemHandle && q.Attrs().Parent == netlink.HANDLE_ROOT {
			if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("remove netem on %s: %w", s.Device, err)
			}
		}
	}
	return nil
}
