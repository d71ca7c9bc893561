package sandbox

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"nslab/labs"
)

// These tests decode expression lists in the exact shapes nft 1.0.6
// emits (dumped from the kernel with google/nftables); the end-to-end
// tests in observe_test.go load the same rules with nft into a node.

func ntMeta(k expr.MetaKey) *expr.Meta { return &expr.Meta{Key: k, Register: 1} }
func ntEq(b ...byte) *expr.Cmp         { return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b} }
func ntCmp(op expr.CmpOp, b ...byte) *expr.Cmp {
	return &expr.Cmp{Op: op, Register: 1, Data: b}
}
func ntNH(off, n uint32) *expr.Payload {
	return &expr.Payload{Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n, DestRegister: 1}
}
func ntTH(off, n uint32) *expr.Payload {
	return &expr.Payload{Base: expr.PayloadBaseTransportHeader, Offset: off, Len: n, DestRegister: 1}
}
func ntBE16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func ntHost32(v uint32) []byte {
	return binary.NativeEndian.AppendUint32(nil, v)
}

var (
	ntTCPDep  = []expr.Any{ntMeta(expr.MetaKeyL4PROTO), ntEq(unix.IPPROTO_TCP)}
	ntIPv4Dep = []expr.Any{ntMeta(expr.MetaKeyNFPROTO), ntEq(unix.NFPROTO_IPV4)}
	ntAccept  = &expr.Verdict{Kind: expr.VerdictAccept}
	ntDrop    = &expr.Verdict{Kind: expr.VerdictDrop}
)

func ntCat(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch p := p.(type) {
		case []expr.Any:
			out = append(out, p...)
		case expr.Any:
			out = append(out, p)
		}
	}
	return out
}

func ntPorts(lo, hi int) []int {
	var out []int
	for p := lo; p <= hi; p++ {
		out = append(out, p)
	}
	return out
}

func TestNFTDecodeExprs(t *testing.T) {
	sets := map[string]*nftSetInfo{
		"__set0": {Set: &nftables.Set{Name: "__set0", Anonymous: true, KeyType: nftables.TypeInetService},
			Elems: []nftables.SetElement{{Key: ntBE16(80)}, {Key: ntBE16(443)}}},
		// nft 1.0.6 + kernel 6.18 list interval elements high to low,
		// each range as a start and a flagged end one past it.
		"__set1": {Set: &nftables.Set{Name: "__set1", Anonymous: true, Interval: true, KeyType: nftables.TypeInetService},
			Elems: []nftables.SetElement{{Key: ntBE16(4001), IntervalEnd: true}, {Key: ntBE16(4000)}, {Key: ntBE16(3006), IntervalEnd: true},
				{Key: ntBE16(3000)}, {Key: ntBE16(0), IntervalEnd: true}}},
		"__set2": {Set: &nftables.Set{Name: "__set2", Anonymous: true, Interval: true, KeyType: nftables.TypeIPAddr},
			Elems: []nftables.SetElement{{Key: []byte{192, 169, 0, 0}, IntervalEnd: true}, {Key: []byte{192, 168, 0, 0}},
				{Key: []byte{11, 0, 0, 0}, IntervalEnd: true}, {Key: []byte{10, 0, 0, 0}}, {Key: []byte{1, 2, 3, 5}, IntervalEnd: true},
				{Key: []byte{1, 2, 3, 4}}, {Key: []byte{0, 0, 0, 0}, IntervalEnd: true}}},
		"blocked": {Set: &nftables.Set{Name: "blocked", KeyType: nftables.TypeIPAddr},
			Elems: []nftables.SetElement{{Key: []byte{203, 0, 113, 7}}}},
	}
	d := &nftDecoder{family: nftables.TableFamilyINet, sets: sets, ifName: func(i int) string {
		return map[int]string{1: "lo", 2: "eth0"}[i]
	}}
	tests := []struct {
		name  string
		exprs []expr.Any
		want  labs.NFTRule
	}{
		{"tcp dport 22 ip saddr prefix", ntCat(ntTCPDep, ntTH(2, 2), ntEq(0, 22), ntIPv4Dep, ntNH(12, 3), ntEq(192, 168, 1), ntAccept),
			labs.NFTRule{Proto: "tcp", Dport: []int{22}, Saddr: []string{"192.168.1.0/24"}, Verdict: "accept",
				Text: "tcp dport 22 ip saddr 192.168.1.0/24 accept"}},
		{"anonymous port set", ntCat(ntTCPDep, ntTH(2, 2), &expr.Lookup{SourceRegister: 1, SetName: "__set0"}, ntAccept),
			labs.NFTRule{Proto: "tcp", Dport: []int{80, 443}, Verdict: "accept", Text: "tcp dport { 80, 443 } accept"}},
		{"interval port set", ntCat(ntTCPDep, ntTH(2, 2), &expr.Lookup{SourceRegister: 1, SetName: "__set1"}, ntAccept),
			labs.NFTRule{Proto: "tcp", Dport: append(ntPorts(3000, 3005), 4000), Verdict: "accept",
				Text: "tcp dport { 3000-3005, 4000 } accept"}},
		{"address interval set", ntCat(ntIPv4Dep, ntNH(12, 4), &expr.Lookup{SourceRegister: 1, SetName: "__set2"}, &expr.Counter{Packets: 3, Bytes: 252}, ntDrop),
			labs.NFTRule{Saddr: []string{"1.2.3.4/32", "10.0.0.0/8", "192.168.0.0/16"}, Counter: true, Packets: 3, Bytes: 252, Verdict: "drop",
				Text: "ip saddr { 1.2.3.4, 10.0.0.0/8, 192.168.0.0/16 } counter packets 3 bytes 252 drop"}},
		{"named set", ntCat(ntIPv4Dep, ntNH(16, 4), &expr.Lookup{SourceRegister: 1, SetName: "blocked"}, ntDrop),
			labs.NFTRule{Daddr: []string{"203.0.113.7/32"}, Verdict: "drop", Text: "ip daddr @blocked drop"}},
		{"ct state", ntCat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ntHost32(6), Xor: ntHost32(0)},
			ntCmp(expr.CmpOpNeq, ntHost32(0)...), ntAccept),
			labs.NFTRule{CTState: []string{"established", "related"}, Verdict: "accept", Text: "ct state established,related accept"}},
		{"ct state not", ntCat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: ntHost32(8), Xor: ntHost32(0)},
			ntEq(ntHost32(0)...), ntDrop),
			labs.NFTRule{CTState: []string{"invalid", "established", "related", "untracked"}, Verdict: "drop",
				Text: "ct state invalid,established,related,untracked drop"}},
		{"port range as two cmps", ntCat(ntTCPDep, ntTH(2, 2), ntCmp(expr.CmpOpGte, ntBE16(1000)...), ntCmp(expr.CmpOpLte, ntBE16(2000)...), ntDrop),
			labs.NFTRule{Proto: "tcp", Dport: ntPorts(1000, 2000), Verdict: "drop", Text: "tcp dport 1000-2000 drop"}},
		{"range expr", ntCat(ntTCPDep, ntTH(0, 2), &expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: ntBE16(5), ToData: ntBE16(7)}, ntDrop),
			labs.NFTRule{Proto: "tcp", Sport: []int{5, 6, 7}, Verdict: "drop", Text: "tcp sport 5-7 drop"}},
		{"not equal port", ntCat(ntTCPDep, ntTH(0, 2), ntCmp(expr.CmpOpNeq, ntBE16(22)...), ntAccept),
			labs.NFTRule{Proto: "tcp", Sport: append(ntPorts(0, 21), ntPorts(23, 65535)...), Verdict: "accept", Text: "tcp sport != 22 accept"}},
		{"th dport", ntCat(ntTH(2, 2), ntEq(ntBE16(5000)...), ntAccept),
			labs.NFTRule{Dport: []int{5000}, Verdict: "accept", Text: "th dport 5000 accept"}},
		{"bitwise prefix", ntCat(ntIPv4Dep, ntNH(12, 4), &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 240, 0}, Xor: make([]byte, 4)},
			ntEq(10, 1, 16, 0), ntAccept),
			labs.NFTRule{Saddr: []string{"10.1.16.0/20"}, Verdict: "accept", Text: "ip saddr 10.1.16.0/20 accept"}},
		{"iifname and iif", ntCat(ntMeta(expr.MetaKeyIIFNAME), ntEq([]byte("eth0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")...),
			ntMeta(expr.MetaKeyOIF), ntEq(ntHost32(1)...), ntAccept),
			labs.NFTRule{IIF: "eth0", OIF: "lo", Verdict: "accept", Text: `iifname "eth0" oif "lo" accept`}},
		{"iifname wildcard", ntCat(ntMeta(expr.MetaKeyIIFNAME), ntEq([]byte("veth")...), ntAccept),
			labs.NFTRule{IIF: "veth*", Verdict: "accept", Text: `iifname "veth*" accept`}},
		{"dnat", ntCat(ntTCPDep, ntTH(2, 2), ntEq(ntBE16(8080)...), &expr.Immediate{Register: 1, Data: []byte{10, 0, 2, 10}},
			&expr.Immediate{Register: 2, Data: ntBE16(80)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 1, RegProtoMin: 2, RegProtoMax: 2, Specified: true}),
			labs.NFTRule{Proto: "tcp", Dport: []int{8080}, Verdict: "dnat", Target: "10.0.2.10:80", Text: "tcp dport 8080 dnat to 10.0.2.10:80"}},
		{"masquerade to ports", ntCat(ntTCPDep, &expr.Immediate{Register: 1, Data: ntBE16(1000)}, &expr.Immediate{Register: 2, Data: ntBE16(2000)},
			&expr.Masq{ToPorts: true, RegProtoMin: 1, RegProtoMax: 2}),
			labs.NFTRule{Proto: "tcp", Verdict: "masquerade", Target: ":1000-2000", Text: "meta l4proto tcp masquerade to :1000-2000"}},
		{"jump", ntCat(&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: "other"}),
			labs.NFTRule{Counter: true, Verdict: "jump", Target: "other", Text: "counter packets 0 bytes 0 jump other"}},
		{"log limit reject", ntCat(&expr.Log{Key: 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_LEVEL, Level: expr.LogLevelWarning, Data: []byte("x: ")},
			&expr.Limit{Rate: 3, Unit: expr.LimitTimeMinute, Burst: 5}, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}),
			labs.NFTRule{Log: true, Limit: true, Verdict: "reject", Text: `log prefix "x: " limit rate 3/minute reject with tcp reset`}},
		{"icmp type is not representable", ntCat(ntMeta(expr.MetaKeyL4PROTO), ntEq(unix.IPPROTO_ICMP), ntTH(0, 1), ntEq(8), ntAccept),
			labs.NFTRule{Proto: "icmp", Verdict: "accept", Unknown: []string{"icmp type echo-request"}, Text: "icmp type echo-request accept"}},
		{"meta mark", ntCat(ntMeta(expr.MetaKeyMARK), ntEq(ntHost32(1)...), ntAccept),
			labs.NFTRule{Verdict: "accept", Unknown: []string{"meta mark 0x00000001"}, Text: "meta mark 0x00000001 accept"}},
		{"standalone nfproto", ntCat(ntIPv4Dep, ntAccept),
			labs.NFTRule{Verdict: "accept", Unknown: []string{"meta nfproto ipv4"}, Text: "meta nfproto ipv4 accept"}},
		{"register nobody loaded", ntCat(ntEq(1), ntAccept),
			labs.NFTRule{Verdict: "accept", Unknown: []string{"<unreadable expression in reg 1> 1"}, Text: "<unreadable expression in reg 1> 1 accept"}},
		{"contradiction", ntCat(ntTCPDep, ntTH(2, 2), ntEq(ntBE16(22)...), ntEq(ntBE16(23)...), ntAccept),
			labs.NFTRule{Proto: "tcp", Verdict: "accept", Unknown: []string{"contradictory matches on dport"}, Text: "tcp dport 22 tcp dport 23 accept"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := d.decodeRule(&nftables.Rule{Exprs: tc.exprs})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("decoded\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestNFTDecodeIPv6(t *testing.T) {
	d := &nftDecoder{family: nftables.TableFamilyIPv6}
	got := d.decodeRule(&nftables.Rule{Exprs: ntCat(ntNH(8, 8), ntEq(0xfd, 0, 0, 0, 0, 0, 0, 0), ntTCPDep, ntTH(2, 2), ntEq(0, 22), ntAccept)})
	want := labs.NFTRule{Proto: "tcp", Saddr: []string{"fd00::/64"}, Dport: []int{22}, Verdict: "accept", Text: "ip6 saddr fd00::/64 tcp dport 22 accept"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestNFTSpanSets(t *testing.T) {
	v := func(n uint64) nftU128 { return nftU128{0, n} }
	s := nftNormalize([]nftSpan{{v(10), v(20)}, {v(21), v(30)}, {v(5), v(6)}})
	if want := (nftSpanSet{{v(5), v(6)}, {v(10), v(30)}}); !reflect.DeepEqual(s, want) {
		t.Errorf("nftNormalize = %v, want %v", s, want)
	}
	if c := s.complement(8); !reflect.DeepEqual(c, nftSpanSet{{v(0), v(4)}, {v(7), v(9)}, {v(31), v(255)}}) {
		t.Errorf("complement = %v", c)
	}
	if c := nftFullSet(16).complement(16); len(c) != 0 {
		t.Errorf("complement of full = %v", c)
	}
	if i := s.intersect(nftSpanSet{{v(6), v(12)}}); !reflect.DeepEqual(i, nftSpanSet{{v(6), v(6)}, {v(10), v(12)}}) {
		t.Errorf("intersect = %v", i)
	}
	// 10.0.0.1-10.0.0.6 is 10.0.0.1/32, .2/31, .4/31, .6/32.
	lo := nftU128From(netip.MustParseAddr("10.0.0.1").AsSlice())
	hi := nftU128From(netip.MustParseAddr("10.0.0.6").AsSlice())
	var got []string
	for _, p := range nftPrefixSpans(nftSpan{lo, hi}, 32) {
		got = append(got, nftPrefixString(p.start, p.bits, false))
	}
	if want := []string{"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"}; !slices.Equal(got, want) {
		t.Errorf("prefixes = %v, want %v", got, want)
	}
	all := nftPrefixSpans(nftFullSet(128)[0], 128)
	if len(all) != 1 || nftPrefixString(all[0].start, all[0].bits, true) != "::/0" {
		t.Errorf("full v6 = %v", all)
	}
}

func TestNFTRenderSetElements(t *testing.T) {
	s := &nftables.Set{Interval: true, KeyType: nftables.TypeIPAddr}
	elems := []nftables.SetElement{{Key: []byte{10, 0, 0, 0}}, {Key: []byte{11, 0, 0, 0}, IntervalEnd: true},
		{Key: []byte{192, 0, 2, 1}}, {Key: []byte{192, 0, 2, 4}, IntervalEnd: true}}
	if got, want := nftSetElements(s, elems), []string{"10.0.0.0/8", "192.0.2.1-192.0.2.3"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Adjacent ranges without auto-merge: 10-19 and 20-29.
	adj := []nftables.SetElement{{Key: ntBE16(20)}, {Key: ntBE16(20), IntervalEnd: true}, {Key: ntBE16(10)}, {Key: ntBE16(30), IntervalEnd: true}}
	if got, want := nftSetElements(&nftables.Set{Interval: true, KeyType: nftables.TypeInetService}, adj), []string{"10-29"}; !slices.Equal(got, want) {
		t.Errorf("adjacent: got %v, want %v", got, want)
	}
	m := &nftables.Set{IsMap: true, KeyType: nftables.TypeInetService, DataType: nftables.TypeIPAddr}
	if got, want := nftSetElements(m, []nftables.SetElement{{Key: ntBE16(80), Val: []byte{10, 0, 0, 2}}}), []string{"80 : 10.0.0.2"}; !slices.Equal(got, want) {
		t.Errorf("map: got %v, want %v", got, want)
	}
}
