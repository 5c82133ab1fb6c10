import Foundation

/// Writes a file so that a reader sees either the old file or the complete new one, never a
/// partial write, even across a crash: temp file in the same directory, fsync, rename, fsync the
/// directory. A failure leaves any previous file untouched and removes the temp file.
public enum AtomicFile {
    public struct WriteError: Error, CustomStringConvertible {
        public let path: String, problem: String
        public var description: String { "cannot write \(path): \(problem)" }
    }

    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw WriteError(path: path, problem: String(cString: strerror(errno))) }
        var problem = writeAll(fd, data)
        if problem == nil && fsync(fd) != 0 { problem = "fsync: " + String(cString: strerror(errno)) }
        close(fd)
        if problem == nil && rename(temporary, path) != 0 { problem = "rename: " + String(cString: strerror(errno)) }
        if let problem {
            unlink(temporary)
            throw WriteError(path: path, problem: problem)
        }
        let dfd = open(directory, O_RDONLY)
        if dfd >= 0 {
            fsync(dfd)
            close(dfd)
        }
    }

    /// Writes all of `data` with write(2), retrying short writes and EINTR; the problem, if any.
    static func writeAll(_ fd: Int32, _ data: Data) -> String? {
        data.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return String(cString: strerror(errno))
                }
                written += n
            }
            return nil
        }
    }
}

/// A file written by appending whole lines with write(2): a failure (a full disk, a file size
/// limit) comes back as an error to report, never as a trap, and a partial line is cut back off.
public final class AppendingFile {
    public let path: String
    private let descriptor: Int32

    /// Opens (creating it if needed) and appends after the existing bytes.
    public init(path: String) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw AtomicFile.WriteError(path: path, problem: String(cString: strerror(errno))) }
    }

    deinit { close(descriptor) }

    public func append(_ data: Data) throws {
        let start = lseek(descriptor, 0, SEEK_END)
        if let problem = AtomicFile.writeAll(descriptor, data) {
            if start >= 0 { _ = ftruncate(descriptor, start) }
            throw AtomicFile.WriteError(path: path, problem: problem)
        }
    }
}
