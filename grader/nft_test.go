package grader

import (
	"testing"

	"nslab/labs"
)

func nft(c labs.NFTCheck) labs.Check { return labs.Check{NFTables: &c} }

func TestNFTTablesAndChains(t *testing.T) {
	obs := fixture(t, "", "r1", "h2")
	runCases(t, obs, []checkCase{
		{name: "table", check: nft(labs.NFTCheck{Node: "r1", Family: "inet", Table: "filter"}),
			pass: true, msg: []string{"r1 has nftables table inet filter"}},
		{name: "table wrong family", check: nft(labs.NFTCheck{Node: "r1", Family: "ip", Table: "filter"}),
			msg: []string{"r1 has table filter, but in family inet, not ip"}, ev: []string{"table inet filter", "table ip nat"}},
		{name: "table missing", check: nft(labs.NFTCheck{Node: "r1", Table: "mangle"}),
			msg: []string{"r1 has no nftables table mangle"}},
		{name: "no ruleset", check: nft(labs.NFTCheck{Node: "h2", Table: "filter"}),
			msg: []string{"h2 has no nftables ruleset (no tables at all)"}},
		{name: "table absent ok", check: nft(labs.NFTCheck{Node: "r1", Table: "mangle", Absent: true}), pass: true},
		{name: "table absent but present", check: nft(labs.NFTCheck{Node: "r1", Family: "ip", Table: "nat", Absent: true}),
			msg: []string{"r1 still has nftables table ip nat"}},
		{name: "chain", check: nft(labs.NFTCheck{Node: "r1", Family: "inet", Table: "filter", Chain: "input", Hook: "input", Type: "filter", Priority: ptr(0), Policy: "drop"}),
			pass: true, msg: []string{"r1 has chain input in inet filter"}, ev: []string{"type filter hook input priority 0; policy drop;"}},
		{name: "chain wrong policy", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "forward", Policy: "drop"}),
			msg: []string{"r1 chain forward of inet filter has policy accept, want drop"}},
		{name: "chain wrong priority", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "input", Priority: ptr(10)}),
			msg: []string{"has priority 0, want 10"}},
		{name: "regular chain has no policy", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "web", Policy: "drop"}),
			msg: []string{"has no policy (regular chain), want policy drop"}},
		{name: "regular chain wanted on hook", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "web", Hook: "input"}),
			msg: []string{"is a regular chain (no hook), want a base chain on hook input"}},
		{name: "chain missing", check: nft(labs.NFTCheck{Node: "r1", Family: "inet", Table: "filter", Chain: "output"}),
			msg: []string{"r1 has no chain output in table inet filter"}, ev: []string{"chain inet filter input", "chain inet filter web"}},
		{name: "any chain on hook", check: nft(labs.NFTCheck{Node: "r1", Hook: "postrouting", Type: "nat"}), pass: true},
		{name: "hook with wrong policy", check: nft(labs.NFTCheck{Node: "r1", Hook: "forward", Policy: "drop"}),
			msg: []string{"r1 chain forward of inet filter has policy accept, want drop"}},
		{name: "chain absent ok", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "output", Absent: true}), pass: true},
		{name: "chain absent but present", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "orphan", Absent: true}),
			msg: []string{"r1 still has chain orphan in inet filter"}},
	})
}

func TestNFTRules(t *testing.T) {
	sshFromSubnet := &labs.RuleMatch{Proto: "tcp", Dport: []int{22}, Saddr: "192.168.1.0/24", Verdict: "accept"}
	t.Run("ssh", func(t *testing.T) {
		open := fixture(t, "", "fw_open")
		subnet := fixture(t, "", "fw_subnet")
		check := nft(labs.NFTCheck{Node: "fw", Family: "inet", Table: "filter", Chain: "input", Rule: sshFromSubnet})
		runCases(t, subnet, []checkCase{
			{name: "restricted to the subnet", check: check, pass: true,
				msg: []string{"fw has the rule `ip saddr 192.168.1.0/24 tcp dport 22 accept` in inet filter input"}},
			{name: "from every source wanted", check: nft(labs.NFTCheck{Node: "fw", Chain: "input", Rule: &labs.RuleMatch{Dport: []int{22}, Saddr: "any", Verdict: "accept"}}),
				msg: []string{"the rule `ip saddr 192.168.1.0/24 tcp dport 22 accept` in inet filter input accepts port 22 only from 192.168.1.0/24, not from every source"}},
		})
		runCases(t, open, []checkCase{
			{name: "opened to every source", check: check,
				msg: []string{
					"fw has no rule `ip saddr 192.168.1.0/24 tcp dport 22 accept` in chain input of table inet filter",
					"the rule `tcp dport 22 accept` in inet filter input accepts port 22 from every source, not only 192.168.1.0/24",
				},
				ev: []string{"inet filter input: tcp dport 22 accept"}},
			{name: "every source is what is wanted", check: nft(labs.NFTCheck{Node: "fw", Hook: "input", Rule: &labs.RuleMatch{Proto: "tcp", Dport: []int{22}, Saddr: "any", Verdict: "accept"}}),
				pass: true},
		})
	})

	obs := fixture(t, "", "r1")
	runCases(t, obs, []checkCase{
		{name: "on hook, any chain", check: nft(labs.NFTCheck{Node: "r1", Hook: "input", Rule: &labs.RuleMatch{Dport: []int{22}, Verdict: "accept"}}), pass: true},
		{name: "ct state as a set", check: nft(labs.NFTCheck{Node: "r1", Chain: "input", Rule: &labs.RuleMatch{CTState: []string{"related", "established"}, Verdict: "accept"}}), pass: true},
		{name: "ct state differs", check: nft(labs.NFTCheck{Node: "r1", Chain: "input", Rule: &labs.RuleMatch{CTState: []string{"established"}, Verdict: "accept"}}),
			msg: []string{"matches ct state established,related, want established"}},
		{name: "jumped-to chain inherits source", check: nft(labs.NFTCheck{Node: "r1", Hook: "input", Rule: &labs.RuleMatch{
			Proto: "tcp", Dport: []int{443, 80}, Saddr: "10.0.0.0/8", Verdict: "accept", Counter: ptr(true)}}),
			pass: true, msg: []string{"inet filter input → web"}, ev: []string{"counter: 5 packets, 300 bytes"}},
		{name: "jumped-to chain is not open to all", check: nft(labs.NFTCheck{Node: "r1", Hook: "input", Rule: &labs.RuleMatch{
			Dport: []int{80, 443}, Saddr: "any", Verdict: "accept"}}),
			msg: []string{"accepts ports 80,443 only from 10.0.0.0/8, not from every source"}},
		{name: "port set must be equal", check: nft(labs.NFTCheck{Node: "r1", Hook: "input", Rule: &labs.RuleMatch{Dport: []int{80}, Verdict: "accept"}}),
			msg: []string{"matches destination ports 80,443, not 80"}},
		{name: "named set expands", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Rule: &labs.RuleMatch{Dport: []int{2222}, Saddr: "192.168.1.0/24", Verdict: "accept"}}),
			pass: true, ev: []string{"parts the grader does not read: meta mark set 0x1"}},
		{name: "unreachable chain", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Rule: &labs.RuleMatch{Dport: []int{8080}, Verdict: "accept"}}),
			msg: []string{"in chain orphan of inet filter, but no hook reaches that chain"}},
		{name: "named regular chain", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "orphan", Rule: &labs.RuleMatch{Dport: []int{8080}}}), pass: true},
		{name: "masquerade", check: nft(labs.NFTCheck{Node: "r1", Family: "ip", Table: "nat", Chain: "postrouting", Type: "nat", Hook: "postrouting", Priority: ptr(100),
			Rule: &labs.RuleMatch{OIF: "eth1", Saddr: "10.0.1.0/24", Verdict: "masquerade"}}), pass: true},
		{name: "masquerade on the wrong interface", check: nft(labs.NFTCheck{Node: "r1", Table: "nat", Rule: &labs.RuleMatch{OIF: "eth0", Verdict: "masquerade"}}),
			msg: []string{"matches packets leaving by eth1, not eth0"}},
		{name: "log wanted", check: nft(labs.NFTCheck{Node: "r1", Chain: "input", Rule: &labs.RuleMatch{Dport: []int{22}, Log: ptr(true)}}),
			msg: []string{"does not log"}},
		{name: "wrong verdict", check: nft(labs.NFTCheck{Node: "r1", Chain: "input", Rule: &labs.RuleMatch{Proto: "tcp", Dport: []int{22}, Verdict: "drop"}}),
			msg: []string{"has verdict accept, want drop"}},
		{name: "nothing alike", check: nft(labs.NFTCheck{Node: "r1", Chain: "forward", Rule: &labs.RuleMatch{Verdict: "drop"}}),
			msg: []string{"r1 has no rule `drop` in chain forward: the chains there are empty"}},
		{name: "rule in missing chain", check: nft(labs.NFTCheck{Node: "r1", Table: "filter", Chain: "output", Rule: &labs.RuleMatch{Verdict: "drop"}}),
			msg: []string{"r1 has no chain output in table filter"}},
		{name: "rule absent ok", check: nft(labs.NFTCheck{Node: "r1", Chain: "input", Rule: &labs.RuleMatch{Dport: []int{23}}, Absent: true}), pass: true},
		{name: "rule absent but present", check: nft(labs.NFTCheck{Node: "r1", Chain: "input", Rule: &labs.RuleMatch{Dport: []int{22}, Verdict: "accept"}, Absent: true}),
			msg: []string{"r1 still has the rule `tcp dport 22 accept` in inet filter input"}},
	})
}
