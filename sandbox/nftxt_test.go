package sandbox

import (
	"context"
	"slices"
	"strings"
	"testing"

	"nslab/labs"
)

// TestDecodeIptablesRules: rules written with iptables (nft backend) keep
// xtables matches and targets; the ones labs teach are decoded.
func TestDecodeIptablesRules(t *testing.T) {
	m := testManager(t)
	sb := build(t, m, catalogLab(t, "hello-link"))
	mustRun(t, sb, "h2", "sh", "-c", strings.Join([]string{
		"iptables -A INPUT -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT",
		"iptables -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT",
		"iptables -A INPUT -p tcp -m multiport --dports 80,443,8000:8002 -j ACCEPT",
		"iptables -A INPUT -p tcp --dport 7 -j REJECT --reject-with tcp-reset",
		"iptables -A INPUT -j LOG --log-prefix drop:",
		"iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE",
		"iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.1:80",
	}, " && "))
	st, err := sb.Snapshot(context.Background(), "h2", SnapshotOptions{NFT: true})
	if err != nil {
		t.Fatal(err)
	}
	var rules []labs.NFTRule
	for _, tb := range st.NFT {
		for _, ch := range tb.Chains {
			rules = append(rules, ch.Rules...)
		}
	}
	find := func(pred func(r labs.NFTRule) bool) *labs.NFTRule {
		for i := range rules {
			if pred(rules[i]) {
				return &rules[i]
			}
		}
		return nil
	}
	tests := []struct {
		name string
		ok   func(r labs.NFTRule) bool
	}{
		{"conntrack new", func(r labs.NFTRule) bool {
			return slices.Equal(r.Dport, []int{22}) && slices.Equal(r.CTState, []string{"new"}) && r.Verdict == "accept" && len(r.Unknown) == 0
		}},
		{"state established,related", func(r labs.NFTRule) bool {
			return len(r.CTState) == 2 && slices.Contains(r.CTState, "established") && slices.Contains(r.CTState, "related") && r.Verdict == "accept"
		}},
		{"multiport", func(r labs.NFTRule) bool {
			return slices.Equal(r.Dport, []int{80, 443, 8000, 8001, 8002}) && r.Verdict == "accept" && len(r.Unknown) == 0
		}},
		{"reject", func(r labs.NFTRule) bool { return slices.Equal(r.Dport, []int{7}) && r.Verdict == "reject" }},
		{"log", func(r labs.NFTRule) bool { return r.Log && len(r.Unknown) == 0 }},
		{"masquerade", func(r labs.NFTRule) bool { return r.Verdict == "masquerade" && r.OIF == "eth0" }},
		{"dnat", func(r labs.NFTRule) bool {
			return r.Verdict == "dnat" && r.Target == "10.0.0.1:80" && slices.Equal(r.Dport, []int{8080})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if find(tc.ok) == nil {
				var all []string
				for _, r := range rules {
					all = append(all, r.Text+" "+strings.Join(r.Unknown, ","))
				}
				t.Errorf("no rule decoded as wanted; rules:\n%s", strings.Join(all, "\n"))
			}
		})
	}
}
