/// x[b,t] = tokenTable[token[b,t]] + positionTable[t].
enum Embedding {
    @inline(__always)
    static func forward<S: TensorScalar>(
        _ x: UnsafeMutablePointer<S>, tokens: UnsafePointer<UInt8>,
        tokenTable: UnsafePointer<S>, positionTable: UnsafePointer<S>,
        batch: Int, sequence: Int, width: Int
    ) {
        for b in 0..<batch {
            for t in 0..<sequence {
                let row = x + (b * sequence + t) * width
                let tok = tokenTable + Int(tokens[b * sequence + t]) * width
                let pos = positionTable + t * width
                for i in 0..<width { row[i] = tok[i] + pos[i] }
            }
        }
    }

    @inline(__always)
    static func backward<S: TensorScalar>(
        dTokenTable: UnsafeMutablePointer<S>, dPositionTable: UnsafeMutablePointer<S>,
        dx: UnsafePointer<S>, tokens: UnsafePointer<UInt8>, batch: Int, sequence: Int, width: Int
    ) {
        for b in 0..<batch {
            for t in 0..<sequence {
                let row = dx + (b * sequence + t) * width
                let tok = dTokenTable + Int(tokens[b * sequence + t]) * width
                let pos = dPositionTable + t * width
                for i in 0..<width {
                    tok[i] += row[i]
                    pos[i] += row[i]
                }
            }
        }
    }
}
