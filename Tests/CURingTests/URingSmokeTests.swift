import CURing
import Testing

/// Proves that liburing imports and links through the pre-include shim (a clean debug build is
/// what used to break) and that this kernel runs io_uring: one NOP round trip.
@Suite struct URingSmokeTests {
    @Test func nopRoundTrip() {
        var ring = io_uring()
        let initResult = io_uring_queue_init(8, &ring, 0)
        #expect(initResult == 0, "io_uring_queue_init returned \(initResult)")
        guard initResult == 0 else { return }
        defer { io_uring_queue_exit(&ring) }

        let sqe = io_uring_get_sqe(&ring)
        #expect(sqe != nil)
        guard let sqe else { return }
        io_uring_prep_nop(sqe)
        io_uring_sqe_set_data64(sqe, 0xC0FFEE)
        #expect(io_uring_submit(&ring) == 1)

        var cqe: UnsafeMutablePointer<io_uring_cqe>? = nil
        #expect(io_uring_wait_cqe(&ring, &cqe) == 0)
        guard let cqe else { return }
        #expect(io_uring_cqe_get_data64(cqe) == 0xC0FFEE)
        #expect(cqe.pointee.res == 0)
        io_uring_cqe_seen(&ring, cqe)
    }
}
