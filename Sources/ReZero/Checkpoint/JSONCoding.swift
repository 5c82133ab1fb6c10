import Foundation

/// The one JSON dialect of every file rezero writes (config.json, metrics.jsonl, summary.json,
/// checkpoint metadata, `--json` output): snake_case keys, sorted so that equal values give equal
/// bytes, and non-finite numbers as the strings "nan", "inf" and "-inf" (JSON has none).
public enum JSONCoding {
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return encoder
    }

    /// Also reads the NaN and Infinity tokens that Python's json module writes.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.allowsJSON5 = true
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return decoder
    }

    /// The canonical text of a value. Encoding the project's own plain types cannot fail.
    public static func string<T: Encodable>(_ value: T, pretty: Bool = false) -> String {
        do {
            return String(decoding: try encoder(pretty: pretty).encode(value), as: UTF8.self)
        } catch {
            preconditionFailure("\(T.self) is not encodable as JSON: \(error)")
        }
    }

    public static func decode<T: Decodable>(_ type: T.Type, from json: String) throws -> T {
        try decoder().decode(type, from: Data(json.utf8))
    }

    /// Decodes a value whose keys the JSON may lack, each taking its value in `defaults` (nested
    /// objects key by key): a configuration or state written before a field existed reads as it was.
    public static func decode<T: Codable>(_ type: T.Type, from json: String, defaults: T) throws -> T {
        let stored = try JSONSerialization.jsonObject(with: Data(json.utf8))
        let base = try JSONSerialization.jsonObject(with: Data(string(defaults).utf8))
        func overlay(_ value: Any, on base: Any) -> Any {
            guard let value = value as? [String: Any], let base = base as? [String: Any] else { return value }
            return base.merging(value) { overlay($1, on: $0) }
        }
        return try decoder().decode(type, from: JSONSerialization.data(withJSONObject: overlay(stored, on: base)))
    }
}
