package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// The node control channel: labd connects to the SOCK_SEQPACKET socket
// that each node's init accepts on (the listener is created by labd, owned
// by host root with mode 0600, and handed to the init as a file), and
// sends one JSON request per packet. File descriptors (a command's stdin,
// stdout and stderr) travel with the request as SCM_RIGHTS, so the
// command's output flows from the node straight into labd's pipes.
//
// exec:  -> {op:exec,...}+fds   <- {pid}   [-> {op:kill}]   <- {exited}
// spawn: -> {op:spawn,...}      <- {pid}   (detached; the init keeps it)
// pty:   -> {op:pty,...}        <- {pid}+master  [-> {op:kill}]   <- {exited}
// ping:  -> {op:ping}           <- {pid: 1}

const maxWireMsg = 64 << 10

type wireRequest struct {
	Op     string   `json:"op"`
	Argv   []string `json:"argv,omitempty"`
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	Self   bool     `json:"self,omitempty"`   // argv[0] is this binary (built-in service)
	Log    string   `json:"log,omitempty"`    // spawn: log file inside the node
	Signal int      `json:"signal,omitempty"` // kill
	Rows   int      `json:"rows,omitempty"`   // pty: initial window size
	Cols   int      `json:"cols,omitempty"`
}

type wireReply struct {
	Pid    int    `json:"pid,omitempty"`
	Error  string `json:"error,omitempty"`
	Code   int    `json:"code,omitempty"` // exit code, or 126/127 with Error when exec failed
	Signal int    `json:"signal,omitempty"`
	Exited bool   `json:"exited,omitempty"`
}

func writeMsg(c *net.UnixConn, v any, fds ...int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err = c.WriteMsgUnix(b, oob, nil)
	return err
}

// maxWireFds is the most descriptors one packet may carry: a spawn
// request's (reply socket, log, control listener, cgroup file, two pipes
// and up to three cgroup tasks files) with room to spare. A packet with
// more is refused whole (MSG_CTRUNC).
const maxWireFds = 16

// readMsg reads one packet into v and returns any file descriptors that
// came with it. The caller owns the returned fds.
func readMsg(c *net.UnixConn, v any) ([]int, error) {
	buf := make([]byte, maxWireMsg)
	oob := make([]byte, unix.CmsgSpace(4*maxWireFds))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return nil, fmt.Errorf("parse control message: %w", perr)
		}
		for _, m := range msgs {
			got, rerr := unix.ParseUnixRights(&m)
			if rerr == nil {
				fds = append(fds, got...)
			}
		}
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeFds(fds)
		return nil, errors.New("control message truncated")
	}
	if n == 0 {
		closeFds(fds)
		return nil, net.ErrClosed
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		closeFds(fds)
		return nil, fmt.Errorf("decode control message: %w", err)
	}
	return fds, nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
