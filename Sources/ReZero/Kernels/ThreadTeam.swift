import Dispatch
import Foundation

/// Work a `ThreadTeam` runs: `work(member:)` is called once for every member, concurrently.
/// Members must write disjoint memory; the team does not check.
protocol TeamJob: AnyObject {
    func work(member: Int)
}

/// A fixed set of threads that run one job at a time: every member runs the job, member 0 on the
/// caller's thread, and `run` returns when all are done. A job object that lives across calls
/// (`run(_ job:)`) costs no heap allocation per call — a training step stays allocation-free —
/// whereas a closure (`run(_ body:)`) has to be boxed for the other threads on every call.
final class ThreadTeam: Sendable {
    let size: Int
    private let shared: Shared

    /// What the team's threads see. The semaphores order every access to `job` and `stopping`:
    /// they are written before `start` is signalled and read after it is waited for.
    private final class Shared: @unchecked Sendable {
        let start: [DispatchSemaphore]
        let done = DispatchSemaphore(value: 0)
        var job: (any TeamJob)?
        var stopping = false

        init(members: Int) { start = (0..<members).map { _ in DispatchSemaphore(value: 0) } }
    }

    init(size: Int) {
        self.size = Swift.max(1, size)
        let shared = Shared(members: self.size - 1)
        self.shared = shared
        for member in 1..<self.size {
            let thread = Thread {
                while true {
                    shared.start[member - 1].wait()
                    if shared.stopping { return }
                    shared.job!.work(member: member)
                    shared.done.signal()
                }
            }
            thread.name = "rezero-team-\(member)"
            thread.start()
        }
    }

    deinit {
        shared.stopping = true
        for semaphore in shared.start { semaphore.signal() }
    }

    /// Runs `job.work(member:)` for every member, concurrently; returns when all have returned.
    func run(_ job: any TeamJob) {
        guard size > 1 else { return job.work(member: 0) }
        shared.job = job
        for semaphore in shared.start { semaphore.signal() }
        job.work(member: 0)
        for _ in 1..<size { shared.done.wait() }
        shared.job = nil
    }

    /// Runs `body(member)` for every member, concurrently. Handing a closure to other threads
    /// costs one heap allocation per call: fine for evaluation, not for the training step.
    func run(_ body: (Int) -> Void) {
        guard size > 1 else { return body(0) }
        withoutActuallyEscaping(body) { body in
            closureJob.body = body
            run(closureJob)
            closureJob.body = nil
        }
    }

    /// The job that runs a closure, made once: a new one per call would be a heap allocation.
    private let closureJob = ClosureJob()

    private final class ClosureJob: TeamJob, @unchecked Sendable {
        var body: ((Int) -> Void)?
        func work(member: Int) { body!(member) }
    }
}
