import APIKeyEngine

/// HTTP Basic authentication as FOSSBilling uses it: user `admin` with the admin token, or user
/// `client` with that client's API token.
struct Authenticator: Sendable {
    /// The role an authenticated caller acts in.
    enum Role: String, Sendable {
        case admin, client
    }

    /// Why authentication failed; each case has its own FOSSBilling-style code in 201...206.
    enum Failure: Int, Error, Sendable {
        /// No `Authorization` header.
        case missing = 201
        /// Not `Basic`, not base64, or no `user:password` inside.
        case malformed = 202
        /// A user other than `admin` or `client`.
        case unknownUser = 203
        /// User `admin` with a token that is not the admin token.
        case wrongAdminToken = 204
        /// User `client` with a token no client has.
        case wrongClientToken = 205
        /// Valid credentials of the other role.
        case wrongRole = 206
    }

    let adminToken: String
    let engine: Engine

    /// The requester that `authorization` (the header's value) proves, for an endpoint of `role`.
    func authenticate(_ authorization: String?, for role: Role) throws(Failure) -> Requester {
        guard let authorization else { throw .missing }
        let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "basic",
            let decoded = Base64.decode(parts[1].trimmingCharacters(in: " ")),
            let credentials = String(validating: decoded, as: UTF8.self),
            let colon = credentials.firstIndex(of: ":")
        else { throw .malformed }
        let user = credentials[..<colon]
        let password = String(credentials[credentials.index(after: colon)...])
        switch user {
        case "admin":
            guard !adminToken.isEmpty, constantTimeEqual(password, adminToken) else { throw .wrongAdminToken }
            guard role == .admin else { throw .wrongRole }
            return .admin
        case "client":
            guard let clientID = engine.authenticateClient(token: password) else { throw .wrongClientToken }
            guard role == .client else { throw .wrongRole }
            return .client(clientID)
        default:
            throw .unknownUser
        }
    }
}

/// Standard base64 (RFC 4648), with or without padding.
enum Base64 {
    /// The bytes `text` encodes; nil when it is not base64.
    static func decode(_ text: Substring) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        var padding = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: "=") {
                padding += 1
                continue
            }
            guard padding == 0 else { return nil }
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "+"): values.append(62)
            case UInt8(ascii: "/"): values.append(63)
            default: return nil
            }
        }
        guard padding <= 2, values.count % 4 != 1 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index + 1 < values.count {
            let chunk = values[index..<min(index + 4, values.count)]
            let a = chunk[index]
            let b = chunk[index + 1]
            bytes.append(a << 2 | b >> 4)
            if chunk.count > 2 {
                let c = chunk[index + 2]
                bytes.append(b << 4 | c >> 2)
                if chunk.count > 3 { bytes.append(c << 6 | chunk[index + 3]) }
            }
            index += 4
        }
        return bytes
    }
}
