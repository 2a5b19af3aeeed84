// liburing.h defines _GNU_SOURCE / _XOPEN_SOURCE before it includes glibc headers, so without
// this file the CURing clang module would see glibc structs (fd_set, sockaddr, ...) that differ
// from the ones in Swift's Glibc module, and clean debug builds fail with "'__fds_bits' from
// module 'SwiftGlibc' is not present in definition of 'fd_set'". Including the glibc headers
// first, with default feature macros, makes both modules agree. If another glibc struct ever
// clashes, add its header here.
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <signal.h>
#include <time.h>
#include <fcntl.h>
#include <liburing.h>
