import APIKeyEngine
import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Three real `apikeyd serve --postgres` processes on a PostgreSQL of the test's own: fan-out,
/// concurrent writers, `kill -9` of a node, PostgreSQL stopped under load, and an exact quota
/// across nodes.
@Suite(.serialized) struct ClusterProcessTests {
    /// The nodes and their database.
    final class Cluster: Sendable {
        let postgres: ThrowawayPostgres
        let directories: [String]
        let nodes: Mutex<[ServerProcess]>

        init(count: Int) throws {
            let postgres = try ThrowawayPostgres()
            let directories = (0..<count).map { _ in TemporaryDirectory().path }
            var nodes: [ServerProcess] = []
            do {
                for (index, directory) in directories.enumerated() {
                    nodes.append(try Self.startNode(directory, index: index, postgres: postgres))
                }
                for node in nodes { try Self.waitUntilReady(node) }
            } catch {
                for node in nodes where node.isAlive { try? node.stop(signal: SIGKILL) }
                postgres.destroy()
                throw error
            }
            self.postgres = postgres
            self.directories = directories
            self.nodes = Mutex(nodes)
        }

        static func startNode(_ directory: String, index: Int, postgres: ThrowawayPostgres) throws -> ServerProcess {
            try ServerProcess.start(
                dataDirectory: directory,
                arguments: ["--postgres", postgres.url, "--node-name", "node\(index)", "--log-level", "info"])
        }

        static func waitUntilReady(_ node: ServerProcess, seconds: Double = 30) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if node.request("GET", "/health", admin: false)?.status == 200 { return }
                usleep(20_000)
            }
            throw KillNineTests.Failure("node not ready after \(seconds) s: \(node.output.log)")
        }

        subscript(index: Int) -> ServerProcess { nodes.withLock { $0[index] } }

        /// Starts node `index` again on its data directory (its cache) and waits until it is ready.
        func restart(_ index: Int) throws -> ServerProcess {
            let node = try Self.startNode(directories[index], index: index, postgres: postgres)
            nodes.withLock { $0[index] = node }
            try Self.waitUntilReady(node)
            return node
        }

        /// Creates a key on node 0 and waits until the nodes `live` all list the same keys.
        func createEverywhere(form: String, on live: [Int]) throws -> (orderID: Int64, key: String) {
            guard let created = self[0].create(form: form) else {
                throw KillNineTests.Failure("create on node 0 failed: \(self[0].output.log)")
            }
            _ = try converged(live)
            return created
        }

        /// Every key as each node lists it (sorted JSON of `get_list`).
        func listing(_ index: Int) -> [String] {
            guard let answer = self[index].request("GET", "/api/admin/serviceapikey/get_list?per_page=1000"),
                case .array(let list)? = answer.body?["result"]?["list"]
            else { return ["no answer"] }
            return list.map { String(decoding: $0.encoded, as: UTF8.self) }.sorted()
        }

        /// Waits until every live node lists the same keys; returns that listing.
        func converged(_ live: [Int], seconds: Double = 20) throws -> [String] {
            let deadline = Date().addingTimeInterval(seconds)
            var listings: [[String]] = []
            while Date() < deadline {
                listings = live.map(listing)
                if Set(listings.map { $0.joined(separator: "\n") }).count == 1 { return listings[0] }
                usleep(50_000)
            }
            // Each node's last log lines, to tell a node that stopped following from a slow one.
            let logs = live.map { "node \($0): \(self[$0].output.log.suffix(1500))" }.joined(separator: "\n")
            throw KillNineTests.Failure("nodes \(live) did not converge: \(listings.map(\.count)) keys\n\(logs)")
        }

        func destroy() {
            for node in nodes.withLock({ $0 }) where node.isAlive { try? node.stop(signal: SIGKILL) }
            postgres.destroy()
            for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
        }
    }

    /// The answer's `result` as a Bool, nil for anything else.
    static func boolean(_ answer: (status: Int, body: JSONValue?)?) -> Bool? {
        guard let answer, answer.status == 200, case .bool(let value)? = answer.body?["result"] else { return nil }
        return value
    }

    /// The node's `/metrics` text.
    static func metrics(_ node: ServerProcess) -> String {
        let response = ServerProcess.exchange(
            port: node.port, Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        return String(decoding: response ?? [], as: UTF8.self)
    }

    static func check(_ node: ServerProcess, _ key: String) -> Bool? {
        boolean(node.request("GET", "/api/guest/serviceapikey/check?key=\(key)", admin: false))
    }

    @Test(.timeLimit(.minutes(5)))
    func aWriteOnOneNodeReachesTheOthersQuickly() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 3)
            defer { cluster.destroy() }
            guard let created = cluster[0].create(form: "client_id=1") else {
                Issue.record("create on node 0 failed: \(cluster[0].output.log)")
                return
            }
            for index in 1...2 {
                let deadline = Date().addingTimeInterval(5)
                while Self.check(cluster[index], created.key) != true, Date() < deadline { usleep(1000) }
                #expect(Self.check(cluster[index], created.key) == true, "node \(index) never saw the new key")
            }
            // A check load on every node while node 1 suspends and unsuspends: how long until
            // nodes 0 and 2 answer the new state.
            let stop = Atomic(false)
            let loaders = (0..<3).map { index in
                Thread { while !stop.load(ordering: .relaxed) { _ = Self.check(cluster[index], created.key) } }
            }
            loaders.forEach { $0.start() }
            var delays: [Double] = []
            for round in 0..<40 {
                let suspend = round % 2 == 0
                let method = suspend ? "suspend" : "unsuspend"
                let acknowledged = cluster[1].request(
                    "POST", "/api/admin/serviceapikey/\(method)", form: "order_id=\(created.orderID)")
                let acked = Date()
                #expect(Self.boolean(acknowledged) == true, "\(method) on node 1: \(String(describing: acknowledged))")
                for index in [0, 2] {
                    while Self.check(cluster[index], created.key) != !suspend, Date().timeIntervalSince(acked) < 5 {}
                    #expect(Self.check(cluster[index], created.key) == !suspend, "node \(index) kept the old state")
                    delays.append(Date().timeIntervalSince(acked) * 1000)
                }
            }
            stop.store(true, ordering: .relaxed)
            delays.sort()
            let p99 = delays[Int(Double(delays.count - 1) * 0.99)]
            FileHandle.standardError.write(
                Data(
                    "fan-out ms (n=\(delays.count)): p50 \(delays[delays.count / 2]) p99 \(p99) max \(delays.last!)\n"
                        .utf8))
            // The contract's figure is 100 ms at p99 (reported by the test's line above and in
            // the README); the bound here is loose so a loaded CI machine does not fail it.
            #expect(p99 < 2000)
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func concurrentWritersOnEveryNodeSkipNoChange() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 3)
            defer { cluster.destroy() }
            let acknowledged = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 6) { writer in
                let node = cluster[writer % 3]
                for index in 0..<25 {
                    if let created = node.create(form: "client_id=\(writer + 1)&config[n]=\(index)") {
                        acknowledged.withLock { $0.append(created.key) }
                        _ = node.request(
                            "POST", "/api/admin/serviceapikey/update",
                            form: "order_id=\(created.orderID)&config[n]=\(index)&config[by]=\(writer)")
                    }
                }
            }
            let keys = acknowledged.withLock { $0 }
            #expect(
                keys.count == 150,
                "every write should be acknowledged with PostgreSQL up: \((0..<3).map { cluster[$0].output.log.suffix(2000) })"
            )
            let listing = try cluster.converged([0, 1, 2])
            #expect(listing.count == keys.count)
            let stored = try cluster.postgres.query("SELECT api_key FROM apikeyd.keys").split(separator: "\n")
            #expect(Set(stored.map(String.init)) == Set(keys))
            let positions = try cluster.postgres.query(
                "SELECT count(*), min(position), max(position) FROM apikeyd.changes")
            // 150 creates and 150 updates, plus nothing else: positions 1...300 without a gap.
            #expect(positions.trimmingCharacters(in: .whitespacesAndNewlines) == "300|1|300")
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func killNineOfANodeLosesNoAcknowledgedWrite() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 3)
            defer { cluster.destroy() }
            let acknowledged = Mutex<[String]>([])
            let killed = Atomic(false)
            let writers = (0..<3).map { writer in
                Thread {
                    for index in 0..<400 {
                        if writer == 2, killed.load(ordering: .relaxed) { return }
                        if let created = cluster[writer].create(form: "client_id=\(writer + 1)&config[n]=\(index)") {
                            acknowledged.withLock { $0.append(created.key) }
                        }
                        if writer != 2, killed.load(ordering: .relaxed), index > 150 { return }
                    }
                }
            }
            writers.forEach { $0.start() }
            usleep(1_000_000)
            try cluster[2].stop(signal: SIGKILL)
            killed.store(true, ordering: .relaxed)
            usleep(1_000_000)
            while writers.contains(where: { $0.isExecuting }) { usleep(10_000) }
            let keys = Set(acknowledged.withLock { $0 })
            #expect(!keys.isEmpty)
            let stored = Set(
                try cluster.postgres.query("SELECT api_key FROM apikeyd.keys").split(separator: "\n").map(String.init))
            #expect(keys.isSubset(of: stored), "\(keys.subtracting(stored).count) acknowledged keys not in PostgreSQL")
            let listing = try cluster.converged([0, 1])
            #expect(listing.count == stored.count)
            // The killed node comes back from its cache and catches up.
            _ = try cluster.restart(2)
            #expect(try cluster.converged([0, 1, 2]).count == stored.count)
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func aNodeBehindThePrunedLogLoadsTheWholeTable() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 2)
            defer { cluster.destroy() }
            let first = try cluster.createEverywhere(form: "client_id=1", on: [0, 1])
            // Node 1 frozen while node 0 writes and the log is pruned past node 1's position.
            kill(cluster[1].process.processIdentifier, SIGSTOP)
            for index in 0..<20 { _ = cluster[0].create(form: "client_id=2&config[n]=\(index)") }
            _ = cluster[0].request("POST", "/api/admin/serviceapikey/delete", form: "order_id=\(first.orderID)")
            _ = try cluster.postgres.query("DELETE FROM apikeyd.changes")
            kill(cluster[1].process.processIdentifier, SIGCONT)
            let listing = try cluster.converged([0, 1])
            #expect(listing.count == 20)
            #expect(Self.check(cluster[1], first.key) == nil, "the deleted key is gone from node 1 too")
            let log = cluster[1].output.log
            #expect(log.contains("is no longer in the log"), "\(log)")
            #expect(log.components(separatedBy: "loaded the whole table").count == 3, "at start and again: \(log)")
            #expect(!log.contains("PostgreSQL unavailable"), "\(log)")
            // Killed, behind a pruned log again, and restarted: it loads the whole table at start.
            try cluster[1].stop(signal: SIGKILL)
            for index in 0..<5 { _ = cluster[0].create(form: "client_id=3&config[n]=\(index)") }
            _ = try cluster.postgres.query("DELETE FROM apikeyd.changes")
            let restarted = try cluster.restart(1)
            #expect(try cluster.converged([0, 1]).count == 25)
            #expect(restarted.output.log.contains("older than the log keeps; loading the whole table"))
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func aGracefulStopFlushesEveryCountedUseAndHandsItsLeasesBack() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 2)
            defer { cluster.destroy() }
            let created = try cluster.createEverywhere(
                form: "client_id=1&config[custom_monthlyLimit]=1000", on: [0, 1])
            var valid = 0
            for _ in 0..<37 {
                let answer = cluster[1].request(
                    "GET", "/api/guest/serviceapikey/verify?key=\(created.key)", admin: false)
                if case .string("VALID")? = answer?.body?["result"]?["code"] { valid += 1 }
            }
            #expect(valid == 37)
            // Stopped at once, before a periodic flush could have sent everything.
            try cluster[1].stop(signal: SIGTERM)
            #expect(cluster[1].exitStatus(within: 30) == 0, "\(cluster[1].output.log)")
            let row = try cluster.postgres.query(
                "SELECT used, granted FROM apikeyd.usage WHERE order_id = \(created.orderID)")
            #expect(
                row.trimmingCharacters(in: .whitespacesAndNewlines) == "37|37", "used|granted: \(cluster[1].output.log)"
            )
            #expect(!cluster[1].output.log.contains("PostgreSQL unavailable"), "\(cluster[1].output.log)")
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func aDatabaseRestoredToAnEarlierPointIsLoadedWholeNotReadOn() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 2)
            defer { cluster.destroy() }
            let first = cluster[0].create(form: "client_id=1")
            let lost = [cluster[0].create(form: "client_id=2"), cluster[0].create(form: "client_id=3")]
            #expect(first != nil && lost.allSatisfy { $0 != nil })
            #expect(try cluster.converged([0, 1]).count == 3)
            try cluster[1].stop(signal: SIGTERM)
            // The database as a backup taken after the first change would restore it.
            _ = try cluster.postgres.query(
                """
                BEGIN; DELETE FROM apikeyd.changes WHERE position > 1; DELETE FROM apikeyd.keys WHERE client_id > 1;
                UPDATE apikeyd.change_log SET last_position = 1; COMMIT;
                """)
            let restarted = try cluster.restart(1)
            #expect(restarted.output.log.contains("was the database restored?"), "\(restarted.output.log)")
            // Node 0 finds the log behind it on its next read, and reloads too; then a write
            // reaches both, and the lost keys are gone from both.
            let deadline = Date().addingTimeInterval(20)
            var after: (orderID: Int64, key: String)?
            while after == nil, Date() < deadline {
                after = cluster[0].create(form: "client_id=4")
                if after == nil { usleep(100_000) }
            }
            #expect(after != nil)
            #expect(try cluster.converged([0, 1]).count == 2)
            for node in [0, 1] {
                for key in lost.compactMap({ $0?.key }) { #expect(Self.check(cluster[node], key) == nil) }
            }
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func postgresStoppedUnderLoadChecksGoOnWritesRecover() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 3)
            defer { cluster.destroy() }
            let created = try cluster.createEverywhere(form: "client_id=1", on: [0, 1, 2])
            let stop = Atomic(false)
            let failedChecks = Atomic(0)
            let checks = Atomic(0)
            let checkers = (0..<3).map { index in
                Thread {
                    while !stop.load(ordering: .relaxed) {
                        if Self.check(cluster[index], created.key) != true { failedChecks.add(1, ordering: .relaxed) }
                        checks.add(1, ordering: .relaxed)
                    }
                }
            }
            checkers.forEach { $0.start() }
            try cluster.postgres.stop()
            usleep(500_000)
            var refused = 0
            for index in 0..<3 {
                let answer = cluster[index].request("POST", "/api/admin/serviceapikey/create", form: "client_id=2")
                if answer?.status == 503 { refused += 1 }
            }
            #expect(refused == 3, "writes with PostgreSQL down answer 503")
            #expect(Self.metrics(cluster[1]).contains("\napikeyd_postgres_up 0"))
            #expect(Self.metrics(cluster[1]).contains("\napikeyd_postgres_reconnects_total "))
            try cluster.postgres.start()
            // Writes recover on every node once it has reconnected.
            for index in 0..<3 {
                let deadline = Date().addingTimeInterval(30)
                var created: (orderID: Int64, key: String)?
                while created == nil, Date() < deadline {
                    created = cluster[index].create(form: "client_id=3")
                    if created == nil { usleep(100_000) }
                }
                #expect(created != nil, "node \(index) took no write after PostgreSQL came back")
            }
            stop.store(true, ordering: .relaxed)
            while checkers.contains(where: { $0.isExecuting }) { usleep(10_000) }
            // The follower says so once it has reconnected (its back-off is at most 5 s).
            let upBy = Date().addingTimeInterval(15)
            while !Self.metrics(cluster[1]).contains("\napikeyd_postgres_up 1"), Date() < upBy { usleep(100_000) }
            #expect(Self.metrics(cluster[1]).contains("\napikeyd_postgres_up 1"))
            #expect(failedChecks.load(ordering: .relaxed) == 0)
            #expect(checks.load(ordering: .relaxed) > 100)
            // The first key and one per node after PostgreSQL came back; the refused writes left nothing.
            let listing = try cluster.converged([0, 1, 2])
            #expect(listing.count == 4, "\(listing.count) keys: \(cluster[0].output.log.suffix(3000))")
            #expect(try cluster.postgres.query("SELECT count(*) FROM apikeyd.keys").hasPrefix("4\n"))
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func postgresCrashingUnderWritesLeavesEveryNodeWriting() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 2)
            defer { cluster.destroy() }
            let stop = Atomic(false)
            let acknowledged = Mutex<Set<String>>([])
            let unanswered = Atomic(0)
            let writers = (0..<4).map { writer in
                Thread {
                    while !stop.load(ordering: .relaxed) {
                        let answer = cluster[writer % 2].request(
                            "POST", "/api/admin/serviceapikey/create", form: "client_id=\(writer + 1)")
                        // No answer, or one that says the outcome is unknown: may have committed.
                        if answer == nil { unanswered.add(1, ordering: .relaxed) }
                        if case .string(let message)? = answer?.body?["error"]?["message"],
                            message.contains("may have taken effect")
                        {
                            unanswered.add(1, ordering: .relaxed)
                        }
                        if let created = ServerProcess.created(by: answer) {
                            _ = acknowledged.withLock { $0.insert(created.key) }
                        } else {
                            usleep(20_000)
                        }
                    }
                }
            }
            writers.forEach { $0.start() }
            usleep(1_500_000)
            try cluster.postgres.stop(mode: "immediate")
            usleep(2_000_000)
            try cluster.postgres.start()
            usleep(1_000_000)
            stop.store(true, ordering: .relaxed)
            while writers.contains(where: { $0.isExecuting }) { usleep(10_000) }
            // Every node takes writes again, each answered well within the write timeout: none
            // is stuck behind a transaction that died with the server.
            for index in 0..<2 {
                let deadline = Date().addingTimeInterval(30)
                var taken = 0
                while taken < 10, Date() < deadline {
                    let started = Date()
                    if let created = cluster[index].create(form: "client_id=9") {
                        _ = acknowledged.withLock { $0.insert(created.key) }
                        taken += 1
                        #expect(Date().timeIntervalSince(started) < 5, "node \(index): a write took 5 s or more")
                    } else {
                        usleep(200_000)
                    }
                }
                #expect(
                    taken == 10,
                    "node \(index) took \(taken) of 10 writes after the crash: \(cluster[index].output.log.suffix(3000))"
                )
            }
            let keys = acknowledged.withLock { $0 }
            let stored = Set(
                try cluster.postgres.query("SELECT api_key FROM apikeyd.keys").split(separator: "\n").map(String.init))
            #expect(keys.isSubset(of: stored), "\(keys.subtracting(stored).count) acknowledged keys lost")
            // Only writes whose outcome was not told may be there unacknowledged.
            #expect(stored.count <= keys.count + unanswered.load(ordering: .relaxed))
            #expect(try cluster.converged([0, 1]).count == stored.count)
            // And a graceful stop still ends.
            try cluster[1].stop(signal: SIGTERM)
            #expect(cluster[1].exitStatus(within: 20) == 0, "\(cluster[1].output.log.suffix(2000))")
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func aQuotaIsNeverExceededAcrossNodes() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 3)
            defer { cluster.destroy() }
            let created = try cluster.createEverywhere(
                form: "client_id=1&config[custom_monthlyLimit]=1000", on: [0, 1, 2])
            let valid = Atomic(0)
            DispatchQueue.concurrentPerform(iterations: 9) { worker in
                var exceeded = 0
                while exceeded < 20 {
                    let answer = cluster[worker % 3].request(
                        "GET", "/api/guest/serviceapikey/verify?key=\(created.key)", admin: false)
                    guard case .string(let code)? = answer?.body?["result"]?["code"] else { continue }
                    if code == "VALID" {
                        valid.add(1, ordering: .relaxed)
                    } else if code == "USAGE_EXCEEDED" {
                        exceeded += 1
                    }
                }
            }
            let passed = valid.load(ordering: .relaxed)
            // Used up everywhere: a cost of 0 answers as a cost of 1 would, on every node.
            for index in 0..<3 {
                for cost in [0, 1] {
                    let answer = cluster[index].request(
                        "GET", "/api/guest/serviceapikey/verify?key=\(created.key)&cost=\(cost)", admin: false)
                    #expect(
                        answer?.body?["result"]?["code"] == .string("USAGE_EXCEEDED"),
                        "node \(index), cost \(cost): \(String(describing: answer))")
                }
            }
            #expect(passed <= 1000)
            #expect(passed > 0)
            // After a flush (every second) the usage PostgreSQL holds is the count of VALID answers.
            let deadline = Date().addingTimeInterval(10)
            var used = ""
            while Date() < deadline {
                used = try cluster.postgres.query(
                    "SELECT coalesce(sum(used), 0) FROM apikeyd.usage WHERE order_id = \(created.orderID)"
                ).trimmingCharacters(in: .whitespacesAndNewlines)
                if used == "\(passed)" { break }
                usleep(100_000)
            }
            #expect(used == "\(passed)")
        }
    }

    /// A read of the log that PostgreSQL refuses while the connection lives on (here cancelled
    /// by an operator while it waits behind a lock) makes the node reconnect and read on; it must
    /// not leave the node listening to notifications without ever reading again.
    @Test(.timeLimit(.minutes(3)))
    func aReadRefusedOnALiveConnectionDoesNotStopFollowing() async throws {
        try await HeavyWork.run {
            let cluster = try Cluster(count: 2)
            defer { cluster.destroy() }
            _ = try cluster.createEverywhere(form: "client_id=1", on: [0, 1])
            let locker = Thread {
                _ = try? cluster.postgres.query(
                    "BEGIN; LOCK TABLE apikeyd.change_log IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;")
            }
            locker.start()
            // Within a poll interval both followers wait for the lock; cancel what waits.
            usleep(2_000_000)
            let cancelled = try cluster.postgres.query(
                "SELECT count(*) FROM (SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()) AS c"
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(cancelled != "0", "no read waited for the lock")
            while locker.isExecuting { usleep(10_000) }
            let created = try #require(cluster[0].create(form: "client_id=2"))
            let until = Date().addingTimeInterval(15)
            while Date() < until, Self.check(cluster[1], created.key) != true { usleep(50_000) }
            #expect(
                Self.check(cluster[1], created.key) == true,
                "node 1 stopped following: \(cluster[1].output.log.suffix(3000))")
            #expect(cluster[1].output.log.contains("reconnecting"), "\(cluster[1].output.log.suffix(3000))")
            #expect(try cluster.converged([0, 1], seconds: 10).count == 2)
        }
    }

    /// Hashed key storage across nodes: one secret for all, keys hashed in PostgreSQL too, and a
    /// node with another secret (or none) never serves the cluster.
    @Test(.timeLimit(.minutes(3)))
    func hashedNodesShareOneSecretAndANodeWithAnotherIsRefused() async throws {
        try await HeavyWork.run {
            let postgres = try ThrowawayPostgres()
            defer { postgres.destroy() }
            let work = TemporaryDirectory()
            defer { work.remove() }
            let secret = work.path + "/secret"
            let other = work.path + "/other"
            work.write("secret", Array((String(repeating: "s", count: 32) + "\n").utf8))
            work.write("other", Array((String(repeating: "o", count: 32) + "\n").utf8))
            func node(_ index: Int, _ secretFile: String) throws -> ServerProcess {
                try ServerProcess.start(
                    dataDirectory: TemporaryDirectory().path,
                    arguments: [
                        "--postgres", postgres.url, "--node-name", "node\(index)", "--key-storage", "hashed",
                        "--key-secret-file", secretFile,
                    ])
            }
            let first = try node(0, secret)
            defer { try? first.stop(signal: SIGKILL) }
            let second = try node(1, secret)
            defer { try? second.stop(signal: SIGKILL) }
            try Cluster.waitUntilReady(first)
            try Cluster.waitUntilReady(second)
            let created = try #require(first.create(form: "client_id=1"))
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, Self.check(second, created.key) != true { usleep(20_000) }
            #expect(Self.check(second, created.key) == true)
            let stored = try postgres.query("SELECT api_key FROM apikeyd.keys").trimmingCharacters(
                in: .whitespacesAndNewlines)
            #expect(KeyStorage.isStoredHash(stored), "\(stored)")
            let payloads = try postgres.query("SELECT encode(payload, 'escape') FROM apikeyd.changes")
            #expect(!payloads.contains(created.key))

            let stranger = try node(2, other)
            defer { try? stranger.stop(signal: SIGKILL) }
            let until = Date().addingTimeInterval(10)
            while Date() < until, !stranger.output.log.contains("give every node the same key storage") {
                usleep(50_000)
            }
            #expect(stranger.output.log.contains("give every node the same key storage"), "\(stranger.output.log)")
            #expect(stranger.request("GET", "/health", admin: false)?.status == 503)
            #expect(Self.check(stranger, created.key) == nil, "it holds nothing of the cluster's")

            let withoutFile = try KeyManagementProcessTests.apikeyd([
                "serve", "--port", "0", "--data-dir", work.path + "/none", "--admin-token", "x", "--postgres",
                postgres.url, "--key-storage", "hashed",
            ])
            #expect(
                withoutFile.status != 0 && withoutFile.err.contains("needs --key-secret-file"), "\(withoutFile.err)")
        }
    }
}
