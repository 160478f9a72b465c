package gso

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed files of testdata/fuzz/FuzzSegment")

// corpusSeeds are the committed seeds of FuzzSegment: real frames with
// printable payloads.
var corpusSeeds = []struct {
	name string
	p    pkt
	typ  uint8
	mss  int
}{
	{"tcp4-64k", pkt{n: 65535 - 40, text: true, seq: 1, id: 5, df: true, tcpFlags: tcpPSH}, TypeTCPv4, 1448},
	{"tcp4-vlan-options", pkt{n: 3000, text: true, tpids: []uint16{etherTypeVLAN}, ipOpts: []byte{1, 1, 1, 0}, tcpOpts: tsOpts}, TypeTCPv4, 1000},
	{"tcp6-hbh", pkt{v6: true, hbh: true, n: 9000, text: true, tcpFlags: tcpFIN | tcpCWR}, TypeTCPv6 | TypeECN, 1420},
	{"ufo4", pkt{udp: true, n: 4000, text: true, id: 9}, TypeUDP, 1480},
	{"ufo6", pkt{v6: true, udp: true, n: 4000, text: true}, TypeUDP, 1448},
	{"uso4", pkt{udp: true, n: 4000, text: true}, TypeUDPL4, 1472},
	{"uso6-hbh", pkt{v6: true, hbh: true, udp: true, n: 3001, text: true}, TypeUDPL4, 1000},
	{"none-csum-tcp4", pkt{n: 1460, text: true}, TypeNone, 0},
	{"none-csum-udp6", pkt{v6: true, udp: true, n: 1001, text: true}, TypeNone, 0},
}

func corpusFile(hdr, frame []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n[]byte(%q)\n", hdr, frame)
}

// TestFuzzCorpus checks the committed seeds against corpusSeeds
// (-update-corpus rewrites them).
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzSegment")
	for _, c := range corpusSeeds {
		frame, _ := c.p.frame()
		hdr := make([]byte, HdrLen)
		c.p.hdr(c.typ, c.mss).Put(hdr)
		want := corpusFile(hdr, frame)
		path := filepath.Join(dir, c.name)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read seed: %v (go test -run TestFuzzCorpus -update-corpus)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale (go test -run TestFuzzCorpus -update-corpus)", path)
		}
	}
}

var fuzzSeg struct {
	sync.Mutex
	s Segmenter // reused, so stale buffer contents would show
}

// FuzzSegment: Segment never panics, never changes its input, and what it
// returns verifies (checksums, lengths, headers, payloads) by verify.
func FuzzSegment(f *testing.F) {
	for _, c := range segmentCases {
		frame, _ := c.p.frame()
		h := c.p.hdr(c.typ, c.mss)
		if c.flags != 0 {
			h.Flags = c.flags
		}
		hdr := make([]byte, HdrLen)
		h.Put(hdr)
		f.Add(hdr, frame)
	}
	f.Fuzz(func(t *testing.T, hdr, frame []byte) {
		h, err := ParseHdr(hdr)
		if err != nil {
			return
		}
		fuzzSeg.Lock()
		defer fuzzSeg.Unlock()
		checkSegment(t, h, frame)
		// Most mutations break a length; also try the frame with its
		// lengths made consistent, to reach segmentation more often.
		if fixed := repair(frame); fixed != nil {
			checkSegment(t, h, fixed)
		}
	})
}

func checkSegment(t *testing.T, h Hdr, frame []byte) {
	orig := bytes.Clone(frame)
	segs, err := fuzzSeg.s.Segment(h, frame)
	if !bytes.Equal(orig, frame) {
		t.Fatal("Segment changed its input")
	}
	if err != nil {
		return
	}
	for i, s := range segs {
		if len(s) > max(len(frame), MaxHeaderLen+ipv6FragLen+int(h.GSOSize)) {
			t.Fatalf("segment %d has %d bytes", i, len(s))
		}
	}
	if err := verify(h, frame, segs); err != nil {
		t.Fatalf("%+v: %v", h, err)
	}
}

// repair returns a copy of frame with its IP and UDP lengths set from the
// frame's length and IPv4 fragmentation cleared, or nil if it has no IP
// header.
func repair(frame []byte) []byte {
	v, err := inspect(frame)
	if err != nil {
		return nil
	}
	f := bytes.Clone(frame)
	if v.v6 {
		binary.BigEndian.PutUint16(f[v.l3+4:], uint16(len(f)-v.l3-40))
	} else {
		binary.BigEndian.PutUint16(f[v.l3+2:], uint16(len(f)-v.l3))
		f[v.l3+6] &^= 0x3f
		f[v.l3+7] = 0
	}
	if v.proto == protoUDP && v.l4+8 <= len(f) {
		binary.BigEndian.PutUint16(f[v.l4+4:], uint16(len(f)-v.l4))
	}
	return f
}
