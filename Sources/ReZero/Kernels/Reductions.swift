/// Sums over a vector in a fixed order: 16 lanes accumulated side by side, then the lanes, then
/// the tail. The result depends on the values alone — not on alignment, threads or which BLAS
/// kernel the CPU selects (OpenBLAS's sasum/sdot kernels do depend on alignment, which broke
/// bit-exact resume between processes).
enum Reduction {
    typealias Lanes<S: TensorScalar> = SIMD16<S>

    /// Σ x[i]·y[i].
    @inline(__always)
    static func dot<S: TensorScalar>(_ count: Int, _ x: UnsafePointer<S>, _ y: UnsafePointer<S>) -> S {
        var lanes = Lanes<S>()
        var i = 0
        while i + Lanes<S>.scalarCount <= count {
            lanes += load(x + i) * load(y + i)
            i += Lanes<S>.scalarCount
        }
        var total = lanes.sum()
        while i < count {
            total += x[i] * y[i]
            i += 1
        }
        return total
    }

    /// Σ x[i].
    @inline(__always)
    static func sum<S: TensorScalar>(_ count: Int, _ x: UnsafePointer<S>) -> S {
        var lanes = Lanes<S>()
        var i = 0
        while i + Lanes<S>.scalarCount <= count {
            lanes += load(x + i)
            i += Lanes<S>.scalarCount
        }
        var total = lanes.sum()
        while i < count {
            total += x[i]
            i += 1
        }
        return total
    }

    @inline(__always)
    static func load<S: TensorScalar>(_ p: UnsafePointer<S>) -> Lanes<S> {
        UnsafeRawPointer(p).loadUnaligned(as: Lanes<S>.self)
    }
}

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
