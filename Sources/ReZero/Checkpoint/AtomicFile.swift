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
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw WriteError(path: path, problem: String(cString: strerror(errno))) }
        var problem: String?
        data.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    problem = String(cString: strerror(errno))
                    return
                }
                written += n
            }
        }
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
}
