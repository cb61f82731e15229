package netloss

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"faultline.dev/faultline/injectors"
)

// Params are a network-loss fault's parameters as the agent receives them.
type Params struct {
	Netns          string    `json:"netns,omitempty"`
	LossPercent    float64   `json:"lossPercent"`
	Direction      Direction `json:"direction,omitempty"`
	Peers          []string  `json:"peers,omitempty"`
	Ports          []uint16  `json:"ports,omitempty"`
	Protocol       Protocol  `json:"protocol,omitempty"`
	DelayMs        int64     `json:"delayMs,omitempty"`
	CorruptPercent float64   `json:"corruptPercent,omitempty"`
	Device         string    `json:"device,omitempty"`
}

// Spec turns parameters into a fault spec with the given ID.
func (p Params) Spec(id string) (Spec, error) {
	s := Spec{ID: id, Netns: p.Netns, LossPercent: p.LossPercent, Direction: p.Direction, Ports: p.Ports,
		Protocol: p.Protocol, Delay: time.Duration(p.DelayMs) * time.Millisecond, CorruptPercent: p.CorruptPercent, Device: p.Device}
	for _, c := range p.Peers {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return Spec{}, fmt.Errorf("peers: %q is not a CIDR", c)
		}
		s.Peers = append(s.Peers, pfx)
	}
	return s, s.Validate()
}

// Fault adapts a Spec to the agent's interface.
type Fault struct{ Spec Spec }

var _ injectors.Bounded = Fault{}

func (f Fault) Inject(context.Context) error         { return Inject(f.Spec) }
func (f Fault) Recover(context.Context) error        { return Recover(f.Spec) }
func (f Fault) Verify(context.Context) (bool, error) { return Verify(f.Spec) }

// Until is the fault ended by the kernel at deadline (see Spec.Deadline).
func (f Fault) Until(deadline time.Time) injectors.Fault {
	f.Spec.Deadline = deadline
	return f
}

// New is the family's injectors.Factory.
func New(id string, raw json.RawMessage) (injectors.Fault, error) {
	var p Params
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("network loss parameters: %w", err)
	}
	s, err := p.Spec(id)
	if err != nil {
		return nil, err
	}
	return Fault{Spec: s}, nil
}
