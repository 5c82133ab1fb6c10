import Foundation
import Synchronization

/// A request to stop training cleanly: checkpoint at the next step boundary, then exit 0. The
/// flag is read once per step and summed over the ranks with the step's loss, so every rank
/// stops at the same step whichever rank was signalled.
public enum StopSignal {
    private static let received = Atomic<Int32>(0)

    /// SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 ask for the stop (mpirun forwards SIGUSR1/2 to its
    /// ranks without killing them; see launch/run). A second SIGINT exits at once; a repeated
    /// SIGTERM does not, since schedulers often send it to every process of a job.
    public static func install() {
        for sig in [SIGTERM, SIGUSR1, SIGUSR2] {
            signal(sig) { number in StopSignal.received.store(number, ordering: .relaxed) }
        }
        signal(SIGINT) { number in
            if StopSignal.received.load(ordering: .relaxed) != 0 { _exit(128 + number) }
            StopSignal.received.store(number, ordering: .relaxed)
        }
    }

    /// The signal that asked for the stop, if any.
    public static var requested: Int32? {
        let number = received.load(ordering: .relaxed)
        return number == 0 ? nil : number
    }
}
