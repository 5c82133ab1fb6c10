// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "rezero",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "rezero", targets: ["rezero"]),
        .library(name: "ReZero", targets: ["ReZero"]),
        .library(name: "ReZeroCharts", targets: ["ReZeroCharts"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CMPI",
            pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev"])]
        ),
        /// The model, its kernels, training, data, MPI and checkpoints.
        .target(
            name: "ReZero",
            dependencies: [
                "CBLAS", "CMPI",
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        /// SVG charts of run directories (`rezero plot`).
        .target(name: "ReZeroCharts", dependencies: ["ReZero"]),
        .executableTarget(
            name: "rezero",
            dependencies: [
                "ReZero", "ReZeroCharts",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        /// Helpers both test targets share: running the binary, comparing checkpoints.
        .target(name: "TestSupport", dependencies: ["ReZero"], path: "Tests/TestSupport"),
        /// Fast, in-process: kernels, model gradients, optimizer, data, checkpoints, charts.
        .testTarget(name: "ReZeroTests", dependencies: ["ReZero", "ReZeroCharts", "TestSupport"]),
        /// The `rezero` binary and launch scripts as users run them: subprocesses, mpirun,
        /// signals, crashes.
        .testTarget(name: "SystemTests", dependencies: ["ReZero", "TestSupport", "rezero"]),
    ],
    swiftLanguageModes: [.v6]
)
