package relay

import "syscall"

// syscallEMFILE is the accept error of a process out of descriptors.
const syscallEMFILE = syscall.EMFILE
