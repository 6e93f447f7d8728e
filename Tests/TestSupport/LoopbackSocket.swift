#if canImport(Glibc)
    import Glibc
#endif

/// TCP sockets to servers the tests run on loopback.
public enum LoopbackSocket {
    /// A socket connected to 127.0.0.1:`port` from `sourceAddress` (any 127.x.y.z, so tests can act
    /// as distinct clients), with a receive timeout; nil when the socket cannot be set up.
    public static func connect(port: Int, from sourceAddress: String = "127.0.0.1", timeoutSeconds: Int = 10) -> Int32?
    {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return nil }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard call(bind, socket, address(sourceAddress, port: 0)) == 0,
            call(Glibc.connect, socket, address("127.0.0.1", port: port)) == 0
        else {
            close(socket)
            return nil
        }
        return socket
    }

    private static func address(_ text: String, port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(text)
        return address
    }

    private static func call(
        _ operation: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32, _ socket: Int32, _ address: sockaddr_in
    ) -> Int32 {
        var address = address
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                operation(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}
