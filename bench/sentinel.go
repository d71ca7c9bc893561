package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// watcher tells when the kernel has destroyed a set of network
// namespaces, without holding them alive: it plants in each one the end
// of a veth whose other end lives in the watcher's own scratch namespace.
// When a namespace is destroyed its devices are unregistered, the veth
// with them, and the scratch end goes too — an RTM_DELLINK the watcher
// hears. Both nslab and the floor are timed to this same event, after
// their delete call has returned: for both, the kernel finishes the
// teardown asynchronously once the last reference to a namespace (a
// process or an fd) is gone.
type watcher struct {
	ns     *os.File
	h      *netlink.Handle
	done   chan struct{}
	notify chan struct{}
	mu     sync.Mutex
	gone   map[string]time.Time // scratch-side name -> when its DELLINK arrived
	err    error                // the subscription failed
	seq    int
}

func newWatcher() (_ *watcher, err error) {
	w := &watcher{done: make(chan struct{}), notify: make(chan struct{}, 1), gone: map[string]time.Time{}}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	if w.ns, err = newNetNS(hubSysctls); err != nil {
		return nil, fmt.Errorf("watcher netns: %w", err)
	}
	if w.h, err = netlink.NewHandleAt(netns.NsHandle(w.ns.Fd())); err != nil {
		return nil, fmt.Errorf("watcher netlink: %w", err)
	}
	ch := make(chan netlink.LinkUpdate, 256)
	nsh := netns.NsHandle(w.ns.Fd())
	err = netlink.LinkSubscribeWithOptions(ch, w.done, netlink.LinkSubscribeOptions{
		Namespace:         &nsh,
		ReceiveBufferSize: 4 << 20,
		ErrorCallback: func(err error) {
			w.mu.Lock()
			w.err = errors.Join(w.err, err)
			w.mu.Unlock()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watcher subscribe: %w", err)
	}
	go func() {
		for u := range ch {
			if u.Header.Type != unix.RTM_DELLINK {
				continue
			}
			w.mu.Lock()
			w.gone[u.Link.Attrs().Name] = time.Now()
			w.mu.Unlock()
			select {
			case w.notify <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}

// plant puts a sentinel in each namespace (an fd on it) and returns the
// names of their scratch-side ends.
func (w *watcher) plant(nsFds []int) ([]string, error) {
	var names []string
	for _, fd := range nsFds {
		w.seq++
		name := fmt.Sprintf("k%d", w.seq)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "sentinel", PeerNamespace: netlink.NsFd(fd)}
		if err := w.h.LinkAdd(v); err != nil {
			return names, fmt.Errorf("plant sentinel: %w", err)
		}
		names = append(names, name)
	}
	return names, nil
}

// waitGone waits until every named sentinel is gone and returns when the
// last one went.
func (w *watcher) waitGone(names []string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		var last time.Time
		all := true
		for _, n := range names {
			t, ok := w.gone[n]
			if !ok {
				all = false
				break
			}
			if t.After(last) {
				last = t
			}
		}
		if all {
			for _, n := range names {
				delete(w.gone, n)
			}
		}
		err := w.err
		w.mu.Unlock()
		if all {
			return last, nil
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("watcher: %w", err)
		}
		select {
		case <-w.notify:
		case <-deadline:
			return time.Time{}, fmt.Errorf("namespaces not destroyed within %s", timeout)
		}
	}
}

// close releases the scratch namespace, which takes every sentinel end
// still in it (and so its peer) along.
func (w *watcher) close() {
	close(w.done)
	if w.h != nil {
		w.h.Close()
	}
	if w.ns != nil {
		w.ns.Close()
	}
}
