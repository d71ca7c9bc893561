package sandbox

import (
	"encoding/binary"
	"fmt"
	"io"
)

// A minimal pcapng writer (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html):
// one Section Header Block, one Interface Description Block per endpoint,
// named "node:iface" so Wireshark shows which end of which link sent each
// frame, and an Enhanced Packet Block per frame with nanosecond
// timestamps. Little-endian, as readers detect the byte order from the
// section header.

const (
	pcapngSHB = 0x0A0D0D0A
	pcapngIDB = 0x00000001
	pcapngEPB = 0x00000006

	pcapngByteOrderMagic = 0x1A2B3C4D
	pcapngLinkEthernet   = 1

	pcapngOptEnd         = 0
	pcapngOptSHBUserAppl = 4
	pcapngOptIfName      = 2
	pcapngOptIfDesc      = 3
	pcapngOptIfTsresol   = 9
)

// PcapngWriter writes frames as a pcapng stream. Each block goes out in
// one Write, so a stream cut between blocks is still a valid file. It is
// not safe for concurrent use.
type PcapngWriter struct {
	w       io.Writer
	started bool
	ifaces  map[string]uint32 // endpoint -> interface id
}

// NewPcapngWriter returns a writer on w. Nothing is written until
// WriteHeader or the first WriteFrame.
func NewPcapngWriter(w io.Writer) *PcapngWriter {
	return &PcapngWriter{w: w, ifaces: map[string]uint32{}}
}

// WriteHeader writes the section header if it has not been written yet;
// a live stream calls it so a reader sees a valid file before the first
// frame.
func (p *PcapngWriter) WriteHeader() error {
	if p.started {
		return nil
	}
	var b []byte
	b = pcapngLE32(b, pcapngByteOrderMagic)
	b = pcapngLE16(b, 1) // version 1.0
	b = pcapngLE16(b, 0)
	b = pcapngLE64(b, ^uint64(0)) // section length unknown: a stream
	b = pcapngOption(b, pcapngOptSHBUserAppl, []byte("nslab"))
	b = pcapngOption(b, pcapngOptEnd, nil)
	if err := p.block(pcapngSHB, b); err != nil {
		return err
	}
	p.started = true
	return nil
}

// WriteFrame writes f, preceded by an interface description the first
// time its endpoint appears. Data beyond CaptureSnaplen is cut.
func (p *PcapngWriter) WriteFrame(f Frame) error {
	if err := p.WriteHeader(); err != nil {
		return err
	}
	name := f.Endpoint
	if name == "" {
		name = "unknown"
	}
	id, ok := p.ifaces[name]
	if !ok {
		id = uint32(len(p.ifaces))
		var b []byte
		b = pcapngLE16(b, pcapngLinkEthernet)
		b = pcapngLE16(b, 0)
		b = pcapngLE32(b, CaptureSnaplen)
		b = pcapngOption(b, pcapngOptIfName, []byte(name))
		if f.Link != "" {
			b = pcapngOption(b, pcapngOptIfDesc, []byte("link "+f.Link))
		}
		b = pcapngOption(b, pcapngOptIfTsresol, []byte{9}) // nanoseconds
		b = pcapngOption(b, pcapngOptEnd, nil)
		if err := p.block(pcapngIDB, b); err != nil {
			return err
		}
		p.ifaces[name] = id
	}
	data := f.Data
	if len(data) > CaptureSnaplen {
		data = data[:CaptureSnaplen]
	}
	ts := uint64(f.Time.UnixNano())
	b := make([]byte, 0, 20+len(data)+3)
	b = pcapngLE32(b, id)
	b = pcapngLE32(b, uint32(ts>>32))
	b = pcapngLE32(b, uint32(ts))
	b = pcapngLE32(b, uint32(len(data)))
	b = pcapngLE32(b, uint32(max(f.OrigLen, len(f.Data))))
	b = append(b, data...)
	b = pcapngPad4(b)
	return p.block(pcapngEPB, b)
}

// block writes a block: type, total length, body (already padded to 32
// bits), total length again.
func (p *PcapngWriter) block(typ uint32, body []byte) error {
	total := uint32(12 + len(body))
	b := make([]byte, 0, total)
	b = pcapngLE32(b, typ)
	b = pcapngLE32(b, total)
	b = append(b, body...)
	b = pcapngLE32(b, total)
	if _, err := p.w.Write(b); err != nil {
		return fmt.Errorf("write pcapng block: %w", err)
	}
	return nil
}

func pcapngOption(b []byte, code uint16, val []byte) []byte {
	b = pcapngLE16(b, code)
	b = pcapngLE16(b, uint16(len(val)))
	return pcapngPad4(append(b, val...))
}

func pcapngPad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func pcapngLE16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func pcapngLE32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func pcapngLE64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
