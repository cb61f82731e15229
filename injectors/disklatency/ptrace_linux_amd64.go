//go:build linux && amd64

package disklatency

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The system calls a fault may delay, by name: x86_64 numbers.
var syscallNumbers = map[string]uint64{
	"fsync":           unix.SYS_FSYNC,
	"fdatasync":       unix.SYS_FDATASYNC,
	"write":           unix.SYS_WRITE,
	"pwrite64":        unix.SYS_PWRITE64,
	"sync_file_range": unix.SYS_SYNC_FILE_RANGE,
}

const (
	auditArchX86_64 = 0xc000003e // AUDIT_ARCH_X86_64: the 64-bit system call ABI
	userCS64        = 0x33       // %cs of 64-bit user code
)

// ptrace requests go through RawSyscall: none of them blocks. The
// signature is the system call's, addr included, which no request here uses.
func ptrace(req, tid int, addr, data uintptr) error { //nolint:unparam // the system call's signature
	_, _, e := syscall.RawSyscall6(syscall.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ptracePtr is ptrace with a pointer for data, converted to uintptr only in
// the system call's argument list, so that it stays valid for the call.
func ptracePtr(req, tid int, addr uintptr, data unsafe.Pointer) error {
	_, _, e := syscall.RawSyscall6(syscall.SYS_PTRACE, uintptr(req), uintptr(tid), addr, uintptr(data), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ptraceSeize attaches to one thread with options, without stopping it.
func ptraceSeize(tid, options int) error {
	return ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(options))
}

// ptraceResume restarts a stopped tracee up to its next system call stop,
// delivering sig (0 for none).
func ptraceResume(tid, sig int) error { return ptrace(unix.PTRACE_SYSCALL, tid, 0, uintptr(sig)) }

// ptraceListen leaves a tracee in group-stop while letting the tracer hear
// of its end (PTRACE_SEIZE only).
func ptraceListen(tid int) error { return ptrace(unix.PTRACE_LISTEN, tid, 0, 0) }

// ptraceDetach releases a stopped tracee, delivering sig (0 for none).
func ptraceDetach(tid, sig int) error { return ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)) }

func ptraceInterrupt(tid int) error { return ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0) }

func ptraceEventMsg(tid int) (int, error) {
	var msg uint64
	err := ptracePtr(unix.PTRACE_GETEVENTMSG, tid, 0, unsafe.Pointer(&msg))
	return int(msg), err
}

// syscallInfo is struct ptrace_syscall_info (linux/ptrace.h) with the
// entry member of its union.
type syscallInfo struct {
	Op    uint8
	_     [3]uint8
	Arch  uint32
	IP    uint64
	SP    uint64
	Nr    uint64
	Args  [6]uint64
	_rest [8]uint64 // the union's larger members
}

// ptraceSyscallInfo reads what a syscall stop is (PTRACE_GET_SYSCALL_INFO,
// Linux 5.3 and later).
func ptraceSyscallInfo(tid int, info *syscallInfo) error {
	return ptracePtr(unix.PTRACE_GET_SYSCALL_INFO, tid, unsafe.Sizeof(*info), unsafe.Pointer(info))
}

func ptraceGetRegs(tid int, regs *unix.PtraceRegs) error {
	return ptracePtr(unix.PTRACE_GETREGS, tid, 0, unsafe.Pointer(regs))
}
