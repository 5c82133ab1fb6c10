/// The gated residual branch y = x + α·f (α = 1 for the plain residual of Pre-/Post-LN).
enum Residual {
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ y: UnsafeMutablePointer<S>, _ x: UnsafePointer<S>, branch f: UnsafePointer<S>,
        alpha: S, count: Int
    ) {
        for i in 0..<count { y[i] = x[i] + alpha * f[i] }
    }

    /// Given dy: writes dBranch = α·dy and returns ∂L/∂α = Σ dy·f. (∂L/∂x = dy passes through.)
    @inline(__always)
    @discardableResult
    static func backward<S: TensorScalar>(
        dBranch: UnsafeMutablePointer<S>, dy: UnsafePointer<S>, branch f: UnsafePointer<S>,
        alpha: S, count: Int
    ) -> S {
        for i in 0..<count { dBranch[i] = alpha * dy[i] }
        return S.innerProduct(dy, f, count: count)
    }
}
