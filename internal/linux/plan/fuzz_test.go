package plan

import (
	"encoding/json"
	"reflect"
	"testing"
)

// Each fuzz target checks: decoding never panics, and what decodes
// re-encodes to something that decodes to the same value.

func FuzzPlan(f *testing.F) {
	s, _ := samplePlan().Encode()
	f.Add(s)
	f.Add(`{"root":{"kind":"dir","path":"/"},"disks":[{"unit":0,"file":"/x","is_dir":true}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Decode(s)
		if err != nil {
			return
		}
		again, err := p.Encode()
		if err != nil {
			return
		}
		p2, err := Decode(again)
		if err != nil {
			t.Fatalf("Decode(Encode(p)) failed: %v", err)
		}
		if !jsonEqual(p, p2) {
			t.Fatalf("round trip changed the plan:\n%+v\n%+v", p, p2)
		}
	})
}

func FuzzRequest(f *testing.F) {
	for _, r := range []*Request{
		{Seq: 1, Op: OpUname}, {Seq: 2, Op: OpUbdAdd, Disk: &Disk{Unit: 1, File: "/d"}},
		{Seq: 3, Op: OpLineSet, Arg: "con1", Spec: "pts"}, {Seq: 4, Op: OpStack, Pid: 1},
		{Seq: 5, Op: OpEthAdd, Eth: &Eth{Unit: 0, Transport: "tuntap"}},
	} {
		b, _ := MarshalRequest(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRequest(b)
		if err != nil {
			return
		}
		again, err := MarshalRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := UnmarshalRequest(again)
		if err != nil || !jsonEqual(r, r2) {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}

func FuzzReply(f *testing.F) {
	f.Add([]byte(`{"seq":1,"text":"Linux umlkit 6.1 #1 x86_64"}`))
	f.Add([]byte(`{"seq":2,"code":6,"msg":"busy"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalReply(b)
		if err != nil {
			return
		}
		if r.Code == OK && r.Msg != "" {
			return // refused by MarshalReply
		}
		again, err := MarshalReply(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := UnmarshalReply(again)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
		if (r.Err() == nil) != (r.Code == OK) {
			t.Fatalf("Err() = %v for code %v", r.Err(), r.Code)
		}
	})
}

func FuzzHost(f *testing.F) {
	f.Add([]byte(`{"op":"open","path":"/img","flags":2}`), []byte(`{"errno":13,"msg":"open /img: permission denied"}`))
	f.Add([]byte(`{"op":"mount","path":"/img","ro":true}`), []byte(`{"loop":"/dev/loop3"}`))
	f.Add([]byte(`{"op":"xterm","serial":true,"n":2}`), []byte(`{}`))
	f.Fuzz(func(t *testing.T, req, rep []byte) {
		if r, err := UnmarshalHostRequest(req); err == nil {
			again, _ := MarshalHostRequest(r)
			r2, err := UnmarshalHostRequest(again)
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("request round trip: %+v -> %+v, %v", r, r2, err)
			}
		}
		if r, err := UnmarshalHostReply(rep); err == nil {
			again, _ := MarshalHostReply(r)
			r2, err := UnmarshalHostReply(again)
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("reply round trip: %+v -> %+v, %v", r, r2, err)
			}
			_ = r.Err()
		}
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
