package plan

import (
	"encoding/json"
	"slices"
	"testing"
)

type scRule struct {
	Names    []string `json:"names"`
	Action   string   `json:"action"`
	ErrnoRet *int     `json:"errnoRet"`
	Args     []struct {
		Index uint64 `json:"index"`
		Value uint64 `json:"value"`
		Op    string `json:"op"`
	} `json:"args"`
}

type scProfile struct {
	DefaultAction   string   `json:"defaultAction"`
	DefaultErrnoRet int      `json:"defaultErrnoRet"`
	Syscalls        []scRule `json:"syscalls"`
}

// TestSeccompProfile proves the shipped profile denies what the floor
// promises and allows clone only without namespace flags.
func TestSeccompProfile(t *testing.T) {
	var p scProfile
	if err := json.Unmarshal(SeccompProfile(), &p); err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" {
		t.Fatalf("default action %s", p.DefaultAction)
	}
	denied := []string{"unshare", "mount", "umount2", "keyctl", "add_key", "request_key", "ptrace", "bpf",
		"perf_event_open", "setns", "pivot_root", "chroot", "init_module", "finit_module", "delete_module",
		"kexec_load", "kexec_file_load", "open_by_handle_at", "userfaultfd", "fsopen", "fsmount", "move_mount",
		"open_tree", "io_uring_setup", "process_vm_writev", "clone3"}
	for _, name := range denied {
		for _, r := range p.Syscalls {
			if r.Action == "SCMP_ACT_ALLOW" && slices.Contains(r.Names, name) {
				t.Errorf("%s is allowed", name)
			}
		}
	}
	explicit := false
	for _, r := range p.Syscalls {
		if r.Action == "SCMP_ACT_ERRNO" && slices.Contains(r.Names, "unshare") && r.ErrnoRet != nil && *r.ErrnoRet == 1 {
			explicit = true
		}
	}
	if !explicit {
		t.Error("unshare is not explicitly denied with EPERM")
	}
	var cloneRules int
	for _, r := range p.Syscalls {
		if !slices.Contains(r.Names, "clone") || r.Action != "SCMP_ACT_ALLOW" {
			continue
		}
		cloneRules++
		if len(r.Args) != 1 || r.Args[0].Op != "SCMP_CMP_MASKED_EQ" || r.Args[0].Value&0x10000000 == 0 || r.Args[0].Value != 0x7E020000 {
			t.Errorf("clone allowed without masking namespace flags: %+v", r)
		}
	}
	if cloneRules == 0 {
		t.Error("clone is never allowed: nothing could fork")
	}
	// The everyday syscalls a shell and node need stay allowed.
	for _, name := range []string{"read", "write", "openat", "execve", "wait4", "epoll_wait", "futex", "mmap", "socket", "connect"} {
		ok := false
		for _, r := range p.Syscalls {
			if r.Action == "SCMP_ACT_ALLOW" && slices.Contains(r.Names, name) {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s is not allowed", name)
		}
	}
	if len(SeccompDigest()) != 64 {
		t.Fatal("digest")
	}
}
