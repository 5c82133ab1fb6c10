import Foundation

/// A single-node Slurm brought up by launch/slurm-cluster in a temporary directory, and the
/// client commands against it.
public final class SlurmCluster: Sendable {
    public let directory: String

    /// The states in which a job has ended for good (a requeued job passes through PENDING).
    public static let endStates: Set<String> = ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED",
                                                "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"]

    private init(directory: String) { self.directory = directory }

    /// Starts a cluster with `launch/slurm-cluster up DIR options`, or says why Slurm cannot start here.
    public static func start(_ name: String, options: [String]) -> Result<SlurmCluster, SlurmUnavailable> {
        for tool in ["sbatch", "slurmctld", "slurmd", "munged"] where !onPath(tool) {
            return .failure(SlurmUnavailable(reason: "Slurm is not installed (no \(tool) on PATH; .ci/run installs it: apt-get install slurmctld slurmd slurm-client munge)"))
        }
        guard getuid() == 0 else { return .failure(SlurmUnavailable(reason: "starting slurmctld and slurmd needs root")) }
        let directory = Paths.temporaryDirectory(name)
        do {
            let up = try runProcess(Paths.launch("slurm-cluster"), ["up", directory] + options)
            guard up.status == 0 else {
                return .failure(SlurmUnavailable(reason: "launch/slurm-cluster up failed: \(up.stderr)"))
            }
        } catch {
            return .failure(SlurmUnavailable(reason: "launch/slurm-cluster: \(error)"))
        }
        return .success(SlurmCluster(directory: directory))
    }

    public func stop() {
        _ = try? runProcess(Paths.launch("slurm-cluster"), ["down", directory])
    }

    /// Runs a client command (sbatch, scancel, scontrol, squeue) against this cluster; sbatch
    /// passes `environment` on to the job.
    public func run(_ command: String, _ arguments: [String], environment: [String: String] = [:],
                    directory: String? = nil) throws -> ProcessResult {
        try runProcess("/usr/bin/env", [command] + arguments,
                       environment: environment.merging(["SLURM_CONF": self.directory + "/slurm.conf"]) { $1 },
                       directory: directory)
    }

    /// `sbatch arguments` from `directory`; the job id.
    public func submit(_ arguments: [String], from directory: String, environment: [String: String] = [:]) throws -> Int {
        let result = try run("sbatch", ["--parsable"] + arguments, environment: environment, directory: directory)
        guard result.status == 0, let id = Int(result.stdout.split(separator: ";").first?
            .trimmingCharacters(in: .whitespacesAndNewlines) ?? "") else {
            throw SlurmError(message: "sbatch \(arguments.joined(separator: " ")) failed: \(result.stderr)")
        }
        return id
    }

    /// The fields of `scontrol show job` (JobState, ExitCode, Restarts, RunTime, …); empty once
    /// the controller has forgotten the job.
    public func job(_ id: Int) -> [String: String] {
        guard let result = try? run("scontrol", ["show", "job", String(id)]), result.status == 0 else { return [:] }
        var fields: [String: String] = [:]
        for token in result.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            guard let equals = token.firstIndex(of: "=") else { continue }
            fields[String(token[..<equals])] = String(token[token.index(after: equals)...])
        }
        return fields
    }

    /// Waits until the job has ended for good, or cancels it at `deadline`; its fields.
    public func waitForEnd(_ id: Int, deadline: Date) throws -> [String: String] {
        while Date() < deadline {
            let fields = job(id)
            if let state = fields["JobState"], Self.endStates.contains(state) { return fields }
            usleep(300_000)
        }
        _ = try? run("scancel", [String(id)])
        throw SlurmError(message: "job \(id) had not ended by the deadline: \(job(id))")
    }

    /// Memory of the node in MB, as the scheduler counts it.
    public func nodeMemory() throws -> Int {
        let result = try run("scontrol", ["show", "node"])
        guard let field = result.stdout.split(separator: " ").first(where: { $0.hasPrefix("RealMemory=") }),
              let megabytes = Int(field.dropFirst("RealMemory=".count)) else {
            throw SlurmError(message: "no RealMemory in scontrol show node: \(result.stdout)")
        }
        return megabytes
    }

    private static func onPath(_ tool: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/usr/sbin").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/\(tool)")
        }
    }
}

public struct SlurmUnavailable: Error, Sendable {
    public let reason: String
}

public struct SlurmError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}
