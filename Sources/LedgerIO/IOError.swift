#if canImport(Glibc)
import Glibc
#endif

/// An operating error from the event loop or a socket call: reported to the caller, who decides
/// whether it is fatal (a replica that cannot start its ring exits with this message).
public enum IOError: Error, Equatable, CustomStringConvertible {
    /// The kernel lacks an io_uring feature the loop relies on.
    case kernelUnsupported(feature: String)
    /// `host` is not a numeric IPv4 or IPv6 address.
    case invalidAddress(host: String)
    /// A system call failed with `errno`.
    case os(errno: Int32, operation: String)

    public var description: String {
        switch self {
        case .kernelUnsupported(let feature):
            return "io_uring: this kernel lacks \(feature) (Linux 5.11 or newer is required)"
        case .invalidAddress(let host):
            return "invalid address '\(host)': expected a numeric IPv4 or IPv6 address"
        case .os(let errno, let operation):
            var hint = ""
            if operation == "io_uring_queue_init" && errno == EPERM {
                hint = " (io_uring may be disabled: sysctl kernel.io_uring_disabled)"
            } else if operation == "io_uring_queue_init" && errno == ENOMEM {
                hint = " (raise the locked-memory limit: ulimit -l)"
            }
            return "\(operation) failed: \(errorMessage(errno)) (errno \(errno))\(hint)"
        }
    }
}

/// The C library's text for `errno` (not on a hot path: error reporting only).
func errorMessage(_ errno: Int32) -> String {
    guard let text = strerror(errno) else { return "unknown error" }
    return String(cString: text)
}
