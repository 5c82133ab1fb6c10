// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "rezero",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "rezero", targets: ["rezero"]),
        .library(name: "ReZero", targets: ["ReZero"]),
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
        .target(
            name: "ReZero",
            dependencies: [
                "CBLAS", "CMPI",
                .product(name: "RealModule", package: "swift-numerics"),
            ],
            swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "rezero",
            dependencies: [
                "ReZero",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "ReZeroTests", dependencies: ["ReZero"]),
    ],
    swiftLanguageModes: [.v5]
)
