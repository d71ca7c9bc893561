package sandbox

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// Rules written with iptables (its nft backend) keep some matches and
// targets as xtables payloads rather than native expressions. These are the
// ones a course teaches: conntrack/state, multiport, LOG, REJECT,
// MASQUERADE, DNAT and SNAT. Anything else stays Unknown.

func (st *nftRuleState) xtMatch(m *expr.Match) {
	switch m.Name {
	case "conntrack":
		var flags xt.ConntrackFlags
		var mask, invert uint16
		switch info := m.Info.(type) {
		case *xt.ConntrackMtinfo1:
			flags, mask, invert = xt.ConntrackFlags(info.MatchFlags), uint16(info.StateMask), info.InvertFlags
		case *xt.ConntrackMtinfo2:
			flags, mask, invert = xt.ConntrackFlags(info.MatchFlags), info.StateMask, info.InvertFlags
		case *xt.ConntrackMtinfo3:
			flags, mask, invert = xt.ConntrackFlags(info.MatchFlags), info.StateMask, info.InvertFlags
		default:
			st.xtUnknown("match", m.Name)
			return
		}
		// Only --ctstate is understood (-m state arrives as conntrack
		// with the state-alias flag).
		if flags&xt.ConntrackState == 0 || flags&^(xt.ConntrackState|xt.ConntrackStateAlias) != 0 {
			st.xtUnknown("match", m.Name)
			return
		}
		allowed := uint32(mask)
		if uint16(invert)&uint16(xt.ConntrackState) != 0 {
			allowed = ^allowed
		}
		st.xtCTState(allowed)
	case "state":
		raw, ok := m.Info.(*xt.Unknown)
		if !ok || len(*raw) < 4 {
			st.xtUnknown("match", m.Name)
			return
		}
		st.xtCTState(binary.NativeEndian.Uint32(*raw))
	case "multiport":
		raw, ok := m.Info.(*xt.Unknown)
		// struct xt_multiport_v1: flags u8, count u8, ports[15] u16,
		// pflags[15] u8, invert u8.
		if !ok || m.Rev != 1 || len(*raw) < 48 {
			st.xtUnknown("match", m.Name)
			return
		}
		b := []byte(*raw)
		which, count, invert := b[0], int(b[1]), b[47] != 0
		if count > 15 || which > 1 || invert {
			st.xtUnknown("match", m.Name) // --ports (either) and ! are not decoded
			return
		}
		var set nftSpanSet
		for i := 0; i < count; i++ {
			lo := uint64(binary.NativeEndian.Uint16(b[2+2*i:]))
			hi := lo
			if b[32+i] != 0 && i+1 < count { // a range lo:hi
				hi = uint64(binary.NativeEndian.Uint16(b[2+2*(i+1):]))
				i++
			}
			set = append(set, nftSpan{nftU128{lo: lo}, nftU128{lo: hi}})
		}
		set = nftNormalize(set)
		kind, name := fieldDport, "dport"
		if which == 0 {
			kind, name = fieldSport, "sport"
		}
		st.constrain(&nftReg{kind: kind, name: "multiport " + name, size: 2, l4: st.l4}, set)
		var ports []string
		for _, sp := range set {
			if sp.lo == sp.hi {
				ports = append(ports, strconv.FormatUint(sp.lo.low(), 10))
			} else {
				ports = append(ports, fmt.Sprintf("%d-%d", sp.lo.low(), sp.hi.low()))
			}
		}
		st.say(fmt.Sprintf("%s { %s }", name, strings.Join(ports, ", ")))
	default:
		st.xtUnknown("match", m.Name)
	}
}

func (st *nftRuleState) xtCTState(allowed uint32) {
	allowed &= nftAllCTStates // xt and nft share the bit layout
	if !st.ctSeen {
		st.ctState, st.ctSeen = nftAllCTStates, true
	}
	st.ctState &= allowed
	st.say("ct state " + strings.Join(nftCTStateNames(allowed), ","))
}

func (st *nftRuleState) xtTarget(t *expr.Target) {
	switch t.Name {
	case "LOG", "NFLOG":
		st.out.Log = true
		st.say("log")
	case "REJECT":
		st.setVerdict("reject", "")
		st.say("reject")
	case "MASQUERADE":
		st.setVerdict("masquerade", "")
		st.say("masquerade")
	case "DNAT", "SNAT":
		verdict := strings.ToLower(t.Name)
		var ip net.IP
		var port uint16
		switch info := t.Info.(type) {
		case *xt.NatRange:
			ip, port = info.MinIP, info.MinPort
		case *xt.NatRange2:
			ip, port = info.MinIP, info.MinPort
		default:
			st.xtUnknown("target", t.Name)
			return
		}
		target := ""
		if ip != nil && !ip.IsUnspecified() {
			target = ip.String()
			if ip.To4() == nil {
				target = "[" + target + "]"
			}
		}
		if port != 0 {
			target += ":" + strconv.Itoa(int(port))
		}
		st.setVerdict(verdict, target)
		st.say(verdict + " to " + target)
	default:
		st.xtUnknown("target", t.Name)
	}
}

func (st *nftRuleState) xtUnknown(kind, name string) {
	st.unknown("xt " + kind + " " + name)
	st.say("xt " + kind + " " + name)
}
