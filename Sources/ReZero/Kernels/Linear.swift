/// y[N,out] = x[N,in] · Wᵀ + b, with W stored [out, in] (PyTorch's layout).
enum Linear {
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ y: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>,
        weight: UnsafePointer<S>, bias: UnsafePointer<S>, rows: Int, inputs: Int, outputs: Int
    ) {
        for r in 0..<rows { (y + r * outputs).update(from: bias, count: outputs) }
        S.gemm(transA: false, transB: true, m: rows, n: outputs, k: inputs,
               alpha: 1, a: x, lda: inputs, b: weight, ldb: inputs, beta: 1, c: y, ldc: outputs)
    }

    /// Accumulates dW and db; writes dx, or adds to it when `accumulateInput`.
    @inline(__always)
    static func backward<S: TensorScalar>(
        dx: UnsafeMutablePointer<S>?, accumulateInput: Bool,
        dWeight: UnsafeMutablePointer<S>, dBias: UnsafeMutablePointer<S>,
        dy: UnsafePointer<S>, x: UnsafePointer<S>, weight: UnsafePointer<S>,
        rows: Int, inputs: Int, outputs: Int
    ) {
        S.gemm(transA: true, transB: false, m: outputs, n: inputs, k: rows,
               alpha: 1, a: dy, lda: outputs, b: x, ldb: inputs, beta: 1, c: dWeight, ldc: inputs)
        for r in 0..<rows {
            let row = dy + r * outputs
            for o in 0..<outputs { dBias[o] += row[o] }
        }
        if let dx {
            S.gemm(transA: false, transB: false, m: rows, n: inputs, k: outputs,
                   alpha: 1, a: dy, lda: outputs, b: weight, ldb: inputs,
                   beta: accumulateInput ? 1 : 0, c: dx, ldc: inputs)
        }
    }
}
