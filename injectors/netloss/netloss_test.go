package netloss

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := Spec{ID: "f1", LossPercent: 30}
	with := func(f func(*Spec)) Spec { s := ok; f(&s); return s }
	tests := map[string]struct {
		spec    Spec
		wantErr string
	}{
		"a plain loss is valid":                       {spec: ok},
		"ports with tcp are valid":                    {spec: with(func(s *Spec) { s.Protocol, s.Ports = TCP, []uint16{443} })},
		"a loss above 100 is refused":                 {spec: with(func(s *Spec) { s.LossPercent = 100.5 }), wantErr: "lossPercent 100.5: must be between 0 and 100"},
		"a negative loss is refused":                  {spec: with(func(s *Spec) { s.LossPercent = -1 }), wantErr: "lossPercent"},
		"NaN is refused":                              {spec: with(func(s *Spec) { s.LossPercent = math.NaN() }), wantErr: "lossPercent"},
		"an unknown direction is refused":             {spec: with(func(s *Spec) { s.Direction = "sideways" }), wantErr: "direction \"sideways\": must be egress, ingress or both"},
		"an unknown protocol is refused":              {spec: with(func(s *Spec) { s.Protocol = "sctp" }), wantErr: "protocol \"sctp\""},
		"ports with icmp are refused":                 {spec: with(func(s *Spec) { s.Protocol, s.Ports = ICMP, []uint16{1} }), wantErr: "ports: need protocol tcp or udp"},
		"port 0 is refused":                           {spec: with(func(s *Spec) { s.Ports = []uint16{0} }), wantErr: "ports: 0 is not a port"},
		"an id that nftables or people would trip on": {spec: with(func(s *Spec) { s.ID = "Bad_ID" }), wantErr: "id \"Bad_ID\""},
		"a delay without a device is refused":         {spec: with(func(s *Spec) { s.Delay = time.Second }), wantErr: "device:"},
		"jitter without delay is refused":             {spec: with(func(s *Spec) { s.Jitter = time.Second; s.Device = "eth0" }), wantErr: "jitter: needs a delay"},
		"corruption above 100 is refused":             {spec: with(func(s *Spec) { s.CorruptPercent = 101; s.Device = "eth0" }), wantErr: "corruptPercent"},
		"an invalid peer is refused":                  {spec: with(func(s *Spec) { s.Peers = []netip.Prefix{{}} }), wantErr: "peers"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.spec.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestMatchersCoverEveryPeerProtocolAndPort(t *testing.T) {
	tests := map[string]struct {
		spec Spec
		want int
	}{
		"no restriction is one catch-all":           {spec: Spec{}, want: 1},
		"ports without a protocol mean tcp and udp": {spec: Spec{Ports: []uint16{80, 443}}, want: 4},
		"two peers, tcp, one port":                  {spec: Spec{Peers: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}, Protocol: TCP, Ports: []uint16{6443}}, want: 2},
		"a peer given with host bits is masked":     {spec: Spec{Peers: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/16")}}, want: 1},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ms := matchers(tc.spec)
			if len(ms) != tc.want {
				t.Fatalf("%d matchers, want %d: %+v", len(ms), tc.want, ms)
			}
			for _, m := range ms {
				if m.peer.IsValid() && m.peer != m.peer.Masked() {
					t.Errorf("peer %s not masked", m.peer)
				}
			}
		})
	}
}

func TestTableIsNamedForTheFault(t *testing.T) {
	if got := (Spec{ID: "exp-1-node-a"}).Table(); got != "faultline-exp-1-node-a" {
		t.Errorf("Table() = %q", got)
	}
}
