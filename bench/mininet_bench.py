"""Mininet side of nslab's bench (written to a temp file and run by it).

argv[1] is a JSON file: {"runs": N, "topologies": [...]} as made by
bench/mininet.go. For each topology: one untimed warm-up (which also
proves the first host reaches the last one), then N runs, each printing
{"topology", "warmup", "create_ms", "stop_ms"} on one line of stdout.
create_ms is build() + start() + the per-host commands (extra addresses,
sysctls, routes); stop_ms is Mininet's stop(), which deletes its links and
bridges and ends its shells. Whatever happens, every network is stopped.
"""
import json
import sys
import time

from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.nodelib import LinuxBridge
from mininet.topo import Topo

# Mininet.init() raises host-wide sysctls and rlimits (fixLimits); the
# bench leaves the host as it found it, and these topologies are small.
Mininet.inited = True


class LabTopo(Topo):
    def build(self, t):
        for h in t["hosts"]:
            self.addHost(h["name"], ip=h.get("ip"))
        for s in t["switches"]:
            self.addSwitch(s["name"], dpid=s["dpid"])
        for l in t["links"]:
            self.addLink(l["host"], l["switch"],
                         intfName1=l["host_intf"], intfName2=l["switch_intf"])


def once(t, warmup):
    net = Mininet(topo=LabTopo(t=t), switch=LinuxBridge, controller=None,
                  build=False)
    stopped = False
    try:
        t0 = time.perf_counter()
        net.build()
        net.start()
        for h in t["hosts"]:
            node = net.get(h["name"])
            for c in h.get("cmds", []):
                out = node.cmd(c)
                if out.strip():
                    raise RuntimeError("%s: %s: %s" % (h["name"], c, out.strip()))
        create = time.perf_counter() - t0
        if warmup and t.get("ping"):
            src, dst = t["ping"]
            out = net.get(src).cmd("ping -c1 -W2 %s >/dev/null && echo ok" % dst)
            if "ok" not in out:
                raise RuntimeError("%s: %s cannot reach %s" % (t["id"], src, dst))
        t1 = time.perf_counter()
        stopped = True
        net.stop()
        stop = time.perf_counter() - t1
    finally:
        if not stopped:
            net.stop()
    print(json.dumps({"topology": t["id"], "warmup": warmup,
                      "create_ms": create * 1000, "stop_ms": stop * 1000}),
          flush=True)


def main():
    setLogLevel("error")
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    for t in spec["topologies"]:
        once(t, True)
        for _ in range(spec["runs"]):
            once(t, False)


if __name__ == "__main__":
    main()
