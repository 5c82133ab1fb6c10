/// Heap buffers for tensors: zeroed, aligned to 64 bytes (a cache line, one AVX-512 vector), so
/// every buffer starts the same way in every process.
enum TensorMemory {
    static let alignment = 64

    static func allocate<S: TensorScalar>(_ type: S.Type = S.self, count: Int) -> UnsafeMutablePointer<S> {
        let bytes = Swift.max(count, 1) * MemoryLayout<S>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return raw.bindMemory(to: S.self, capacity: Swift.max(count, 1))
    }

    static func deallocate<S: TensorScalar>(_ pointer: UnsafeMutablePointer<S>) {
        UnsafeMutableRawPointer(pointer).deallocate()
    }
}
