// Generated from docs/openapi.yaml by scripts/embed-openapi.py (`make openapi`): edit the
// document, not this file.

/// The OpenAPI document of the HTTP API, `docs/openapi.yaml`, served at `GET /openapi.yaml`.
enum OpenAPIDocument {
    /// The document's text.
    static let yaml = #"""
        openapi: 3.1.0
        info:
          title: apikeyd
          version: 1.0.0
          summary: API-key validation with a FOSSBilling-compatible HTTP API.
          description: |
            The HTTP API of `apikeyd serve`: the guest calls a business's application makes on every
            request (`check`, `get_info`, `verify`), the admin calls its billing system makes
            (`serviceapikey` create, get, update, reset, lifecycle, usage; client tokens; snapshots), the
            client calls a customer makes for their own keys, and `/health` and `/metrics`. The server
            serves this document at `GET /openapi.yaml`.

            **Parameters.** Every API call takes GET with its parameters in the query string, or POST with
            them in a JSON body (`application/json`, or any `+json` type) or a form body
            (`application/x-www-form-urlencoded`, also assumed without a `Content-Type`). A POST may also
            carry query parameters; the body's values win. Nested values in forms and query strings use
            PHP's brackets, as FOSSBilling's forms post them: `config[custom_tier]=pro&config[length]=16`.
            Numbers and booleans may be sent as text (`"32"`, `"1"`, `"true"`).

            **The envelope.** Every answer is JSON (`application/json; charset=utf-8`):
            `{"result": <value>, "error": null}` on success, `{"result": null, "error": {"message": "...",
            "code": N}}` on failure.

            **Engine errors answer HTTP 200 with code 9999, as FOSSBilling does**: an unknown key or order,
            a missing or ill-typed parameter, a bad generation option, a key that is not the client's. The
            HTTP status tells only what the transport decided: 400 a request that cannot be read, 401
            authentication, 404 an unknown path or method, 405 a method other than GET or POST (other than
            GET or HEAD on `/health`, `/metrics` and `/openapi.yaml`), 413, 414,
            431 a request over a limit, 429 a client over its rate, 503 writes stopped or a node not ready.

            **Authentication** is HTTP Basic, user `admin` with the admin token, or user `client` with that
            client's API token (from `admin/client/token_reset`). Admin and client calls are authenticated
            before the method is looked up.
          license:
            name: MIT
        servers:
          - url: http://127.0.0.1:8080
            description: "`make serve` on the same machine"
        tags:
          - name: guest
            description: Calls anyone may make with a key.
          - name: admin
            description: The billing system's calls, as user `admin`.
          - name: client
            description: A customer's calls for their own keys, as user `client`.
          - name: operations
            description: Health, metrics and this document.
        security:
          - admin: []
        paths:
          /api/guest/serviceapikey/check:
            get:
              operationId: check
              tags: [guest]
              summary: Whether a key is valid.
              security: []
              parameters:
                - $ref: "#/components/parameters/key"
              responses: &checkResponses
                "200":
                  description: "`true` if the key is valid, `false` if it is known but not valid; `API key does not exist` (9999) for an unknown key."
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - $ref: "#/components/schemas/BooleanResult"
                          - $ref: "#/components/schemas/EngineError"
                      examples:
                        valid:
                          value: {result: true, error: null}
                        unknown:
                          value: {result: null, error: {message: API key does not exist, code: 9999}}
                "400": {$ref: "#/components/responses/Malformed"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
            post:
              operationId: checkPost
              tags: [guest]
              summary: Whether a key is valid (parameters in the body).
              security: []
              requestBody:
                $ref: "#/components/requestBodies/Key"
              responses: *checkResponses
          /api/guest/serviceapikey/get_info:
            get:
              operationId: getInfo
              tags: [guest]
              summary: A key's validity and custom parameters.
              description: |
                `config` holds the key's custom parameters (`custom_` config members) without their prefix,
                in stored order; values that read as decimal numbers are JSON numbers. Anyone holding the
                key can read them: they must never hold secrets.
              security: []
              parameters:
                - $ref: "#/components/parameters/key"
              responses: &getInfoResponses
                "200":
                  description: The key's validity and custom parameters; `API key does not exist` (9999) for an unknown key.
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - type: object
                            required: [result, error]
                            properties:
                              result: {$ref: "#/components/schemas/Info"}
                              error: {type: "null"}
                          - $ref: "#/components/schemas/EngineError"
                      examples:
                        info:
                          value: {result: {valid: 1, config: {monthlyLimit: 250, tier: pro}}, error: null}
                "400": {$ref: "#/components/responses/Malformed"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
            post:
              operationId: getInfoPost
              tags: [guest]
              summary: A key's validity and custom parameters (parameters in the body).
              security: []
              requestBody:
                $ref: "#/components/requestBodies/Key"
              responses: *getInfoResponses
          /api/guest/serviceapikey/verify:
            get:
              operationId: verify
              tags: [guest]
              summary: Check a key and count one use, in one atomic step.
              description: |
                Decides in this order: the key exists (else `NOT_FOUND`), its status (`SUSPENDED`,
                `CANCELED`), its expiry (`EXPIRED`), its own token bucket (`RATE_LIMITED`), its monthly quota
                (`USAGE_EXCEEDED`); only a `VALID` answer adds `cost` to this month's count and takes a
                token. Always answers a code, never an engine error for the key itself. A `request_id`
                repeated within 24 hours returns the first answer again and consumes nothing.
              security: []
              parameters:
                - $ref: "#/components/parameters/key"
                - $ref: "#/components/parameters/cost"
                - $ref: "#/components/parameters/request_id"
              responses: &verifyResponses
                "200":
                  description: The decision with the figures after the call; 9999 for a bad `cost` or `request_id`.
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - type: object
                            required: [result, error]
                            properties:
                              result: {$ref: "#/components/schemas/Verification"}
                              error: {type: "null"}
                          - $ref: "#/components/schemas/EngineError"
                      examples:
                        valid:
                          value:
                            result:
                              valid: 1
                              code: VALID
                              config: {monthlyLimit: 250, tier: pro}
                              usage: {limit: 250, used: 1, remaining: 249, reset_at: "2026-12-01 00:00:00"}
                            error: null
                "400": {$ref: "#/components/responses/Malformed"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
                "503": {$ref: "#/components/responses/Unavailable"}
            post:
              operationId: verifyPost
              tags: [guest]
              summary: Check a key and count one use (parameters in the body).
              security: []
              requestBody:
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/VerifyParameters"}
                    examples:
                      costTwo:
                        value: {key: 2140E346-A7A1C826-93389570-C60E30D6, cost: 2, request_id: req-1}
                  application/x-www-form-urlencoded:
                    schema: {$ref: "#/components/schemas/VerifyParameters"}
              responses: *verifyResponses
          /api/admin/serviceapikey/create:
            get:
              operationId: create
              tags: [admin]
              summary: Create a key for an order.
              parameters:
                - {$ref: "#/components/parameters/order_id"}
                - {$ref: "#/components/parameters/client_id_required"}
                - {$ref: "#/components/parameters/config"}
                - {$ref: "#/components/parameters/status"}
                - {$ref: "#/components/parameters/expires_at"}
              responses: &createResponses
                "200":
                  description: The record, with its new key.
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - $ref: "#/components/schemas/RecordResult"
                          - $ref: "#/components/schemas/EngineError"
                      examples:
                        created:
                          value:
                            result:
                              order_id: 1
                              client_id: 7
                              api_key: 2140E346-A7A1C826-93389570-C60E30D6
                              config: {custom_monthlyLimit: 250, custom_tier: pro}
                              status: active
                              expires_at: null
                              created_at: "2026-11-23 10:36:38"
                              updated_at: "2026-11-23 10:36:38"
                            error: null
                  links:
                    GetTheCreatedRecord:
                      operationId: get
                      parameters: {order_id: "$response.body#/result/order_id"}
                    CheckTheCreatedKey:
                      operationId: check
                      parameters: {key: "$response.body#/result/api_key"}
                    VerifyTheCreatedKey:
                      operationId: verify
                      parameters: {key: "$response.body#/result/api_key"}
                    UpdateTheCreatedRecord:
                      operationId: update
                      parameters: {order_id: "$response.body#/result/order_id"}
                    ResetTheCreatedRecord:
                      operationId: reset
                      parameters: {order_id: "$response.body#/result/order_id"}
                    SuspendTheCreatedRecord:
                      operationId: suspend
                      parameters: {order_id: "$response.body#/result/order_id"}
                    UsageOfTheCreatedRecord:
                      operationId: usage
                      parameters: {order_id: "$response.body#/result/order_id"}
                    DeleteTheCreatedRecord:
                      operationId: delete
                      parameters: {order_id: "$response.body#/result/order_id"}
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
                "503": {$ref: "#/components/responses/Unavailable"}
            post:
              operationId: createPost
              tags: [admin]
              summary: Create a key for an order (parameters in the body).
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/CreateParameters"}
                    examples:
                      readme:
                        value: {order_id: 1, client_id: 7, config: {custom_monthlyLimit: 250, custom_tier: pro}}
                  application/x-www-form-urlencoded:
                    schema: {$ref: "#/components/schemas/CreateParameters"}
                    encoding: &configForm
                      config: {style: deepObject, explode: true}
              responses: *createResponses
          /api/admin/serviceapikey/get:
            get:
              operationId: get
              tags: [admin]
              summary: One record, by order or key.
              parameters: &referenceParameters
                - {$ref: "#/components/parameters/order_id"}
                - {$ref: "#/components/parameters/reference_key"}
              responses: &getResponses
                "200":
                  description: "The record (`api_key` null with hashed key storage); `Order not found` or `API key does not exist` (9999)."
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - $ref: "#/components/schemas/RecordResult"
                          - $ref: "#/components/schemas/EngineError"
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
            post:
              operationId: getPost
              tags: [admin]
              summary: One record, by order or key (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Reference"}
              responses: *getResponses
          /api/admin/serviceapikey/get_list:
            get:
              operationId: getList
              tags: [admin]
              summary: A page of records.
              parameters: &listParameters
                - {$ref: "#/components/parameters/client_id"}
                - {$ref: "#/components/parameters/status"}
                - {$ref: "#/components/parameters/after_order_id"}
                - {$ref: "#/components/parameters/page"}
                - {$ref: "#/components/parameters/per_page"}
              responses: &listResponses
                "200":
                  description: "`total` counts the records that match (past the cursor, if given)."
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - type: object
                            required: [result, error]
                            properties:
                              result: {$ref: "#/components/schemas/Page"}
                              error: {type: "null"}
                          - $ref: "#/components/schemas/EngineError"
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
            post:
              operationId: getListPost
              tags: [admin]
              summary: A page of records (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/List"}
              responses: *listResponses
          /api/admin/serviceapikey/update:
            get:
              operationId: update
              tags: [admin]
              summary: Change an order's config, status or expiry.
              parameters:
                - {$ref: "#/components/parameters/order_id_required"}
                - {$ref: "#/components/parameters/config"}
                - {$ref: "#/components/parameters/valid"}
                - {$ref: "#/components/parameters/status"}
                - {$ref: "#/components/parameters/expires_at"}
                - {$ref: "#/components/parameters/api_key"}
              responses: &trueResponses
                "200":
                  description: "`true`; an engine error (9999) such as `Order not found`."
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - $ref: "#/components/schemas/TrueResult"
                          - $ref: "#/components/schemas/EngineError"
                      examples:
                        done:
                          value: {result: true, error: null}
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
                "503": {$ref: "#/components/responses/Unavailable"}
            post:
              operationId: updatePost
              tags: [admin]
              summary: Change an order's config, status or expiry (parameters in the body).
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/UpdateParameters"}
                  application/x-www-form-urlencoded:
                    schema: {$ref: "#/components/schemas/UpdateParameters"}
                    encoding: *configForm
              responses: *trueResponses
          /api/admin/serviceapikey/reset:
            get:
              operationId: reset
              tags: [admin]
              summary: Give an order a new key.
              description: |
                The old key stops existing at once, or after `grace_seconds` (during which it works exactly
                as the new one). Answers `true`; with hashed key storage the record with the new key, the
                only time it is shown.
              parameters: &resetParameters
                - {$ref: "#/components/parameters/order_id"}
                - {$ref: "#/components/parameters/reference_key"}
                - {$ref: "#/components/parameters/grace_seconds"}
              responses: &resetResponses
                "200":
                  description: "`true`, or the record with the new key (hashed key storage); 9999 for an unknown order or key."
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - $ref: "#/components/schemas/TrueResult"
                          - $ref: "#/components/schemas/RecordResult"
                          - $ref: "#/components/schemas/EngineError"
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
                "503": {$ref: "#/components/responses/Unavailable"}
            post:
              operationId: resetPost
              tags: [admin]
              summary: Give an order a new key (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Reset"}
              responses: *resetResponses
          /api/admin/serviceapikey/suspend:
            get:
              operationId: suspend
              tags: [admin]
              summary: Suspend an order's key.
              parameters: &orderParameters
                - {$ref: "#/components/parameters/order_id_required"}
              responses: *trueResponses
            post:
              operationId: suspendPost
              tags: [admin]
              summary: Suspend an order's key (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Order"}
              responses: *trueResponses
          /api/admin/serviceapikey/unsuspend:
            get:
              operationId: unsuspend
              tags: [admin]
              summary: Make a suspended key active again.
              parameters: *orderParameters
              responses: *trueResponses
            post:
              operationId: unsuspendPost
              tags: [admin]
              summary: Make a suspended key active again (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Order"}
              responses: *trueResponses
          /api/admin/serviceapikey/cancel:
            get:
              operationId: cancel
              tags: [admin]
              summary: Cancel an order's key.
              parameters: *orderParameters
              responses: *trueResponses
            post:
              operationId: cancelPost
              tags: [admin]
              summary: Cancel an order's key (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Order"}
              responses: *trueResponses
          /api/admin/serviceapikey/uncancel:
            get:
              operationId: uncancel
              tags: [admin]
              summary: Make a canceled key active again.
              parameters: *orderParameters
              responses: *trueResponses
            post:
              operationId: uncancelPost
              tags: [admin]
              summary: Make a canceled key active again (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Order"}
              responses: *trueResponses
          /api/admin/serviceapikey/delete:
            get:
              operationId: delete
              tags: [admin]
              summary: Delete an order's record; its key stops existing.
              parameters: *orderParameters
              responses: *trueResponses
            post:
              operationId: deletePost
              tags: [admin]
              summary: Delete an order's record (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Order"}
              responses: *trueResponses
          /api/admin/serviceapikey/usage:
            get:
              operationId: usage
              tags: [admin]
              summary: Counted uses of one order, or of a client's keys, in a month.
              parameters: &usageParameters
                - {$ref: "#/components/parameters/order_id"}
                - {$ref: "#/components/parameters/reference_key"}
                - {$ref: "#/components/parameters/client_id"}
                - {$ref: "#/components/parameters/month"}
              responses: &usageResponses
                "200":
                  description: "One order's usage (by `order_id` or `key`), or a client's (by `client_id`)."
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - type: object
                            required: [result, error]
                            properties:
                              result:
                                oneOf:
                                  - $ref: "#/components/schemas/OrderUsage"
                                  - $ref: "#/components/schemas/ClientUsage"
                              error: {type: "null"}
                          - $ref: "#/components/schemas/EngineError"
                      examples:
                        order:
                          value:
                            result: {order_id: 1, month: "2026-11", used: 1, limit: 250, remaining: 249, reset_at: "2026-12-01 00:00:00"}
                            error: null
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
            post:
              operationId: usagePost
              tags: [admin]
              summary: Counted uses (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Usage"}
              responses: *usageResponses
          /api/admin/serviceapikey/usage_reset:
            get:
              operationId: usageReset
              tags: [admin]
              summary: Set this month's count of an order back to 0.
              parameters: *orderParameters
              responses: *trueResponses
            post:
              operationId: usageResetPost
              tags: [admin]
              summary: Set this month's count back to 0 (parameters in the body).
              requestBody: {$ref: "#/components/requestBodies/Order"}
              responses: *trueResponses
          /api/admin/client/token_reset:
            get:
              operationId: tokenReset
              tags: [admin]
              summary: Create or rotate a client's API token.
              description: The token is shown here only; with hashed key storage the server keeps only its hash.
              parameters:
                - {$ref: "#/components/parameters/client_id_required"}
              responses: &tokenResponses
                "200":
                  description: The client and its new token.
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - type: object
                            required: [result, error]
                            properties:
                              result:
                                type: object
                                required: [client_id, api_token]
                                properties:
                                  client_id: {$ref: "#/components/schemas/ID"}
                                  api_token: {type: string}
                              error: {type: "null"}
                          - $ref: "#/components/schemas/EngineError"
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
                "503": {$ref: "#/components/responses/Unavailable"}
            post:
              operationId: tokenResetPost
              tags: [admin]
              summary: Create or rotate a client's API token (parameters in the body).
              requestBody:
                required: true
                content:
                  application/json:
                    schema: {$ref: "#/components/schemas/ClientParameters"}
                  application/x-www-form-urlencoded:
                    schema: {$ref: "#/components/schemas/ClientParameters"}
              responses: *tokenResponses
          /api/admin/storage/snapshot:
            get:
              operationId: snapshot
              tags: [admin]
              summary: Write a snapshot of the whole state now.
              responses: &snapshotResponses
                "200":
                  description: The snapshot written.
                  content:
                    application/json:
                      schema:
                        oneOf:
                          - type: object
                            required: [result, error]
                            properties:
                              result:
                                type: object
                                required: [path, last_sequence, entries, bytes, milliseconds]
                                properties:
                                  path: {type: string}
                                  last_sequence: {type: integer, minimum: 0}
                                  entries: {type: integer, minimum: 0}
                                  bytes: {type: integer, minimum: 0}
                                  milliseconds: {type: integer, minimum: 0}
                              error: {type: "null"}
                          - $ref: "#/components/schemas/EngineError"
                "400": {$ref: "#/components/responses/Malformed"}
                "401": {$ref: "#/components/responses/Unauthorized"}
                "413": {$ref: "#/components/responses/ContentTooLarge"}
                "414": {$ref: "#/components/responses/URITooLong"}
                "429": {$ref: "#/components/responses/RateLimited"}
                "431": {$ref: "#/components/responses/HeadersTooLarge"}
                "503": {$ref: "#/components/responses/Unavailable"}
            post:
              operationId: snapshotPost
              tags: [admin]
              summary: Write a snapshot of the whole state now.
              responses: *snapshotResponses
          /api/client/serviceapikey/get:
            get:
              operationId: clientGet
              tags: [client]
              summary: One of the client's own records.
              description: Another client's key answers `API key does not exist`, exactly as an unknown key.
              security: [{client: []}]
              parameters: *referenceParameters
              responses: *getResponses
            post:
              operationId: clientGetPost
              tags: [client]
              summary: One of the client's own records (parameters in the body).
              security: [{client: []}]
              requestBody: {$ref: "#/components/requestBodies/Reference"}
              responses: *getResponses
          /api/client/serviceapikey/get_list:
            get:
              operationId: clientGetList
              tags: [client]
              summary: A page of the client's own records.
              security: [{client: []}]
              parameters: *listParameters
              responses: *listResponses
            post:
              operationId: clientGetListPost
              tags: [client]
              summary: A page of the client's own records (parameters in the body).
              security: [{client: []}]
              requestBody: {$ref: "#/components/requestBodies/List"}
              responses: *listResponses
          /api/client/serviceapikey/reset:
            get:
              operationId: clientReset
              tags: [client]
              summary: Give one of the client's own orders a new key.
              security: [{client: []}]
              parameters: *resetParameters
              responses: *resetResponses
            post:
              operationId: clientResetPost
              tags: [client]
              summary: Give one of the client's own orders a new key (parameters in the body).
              security: [{client: []}]
              requestBody: {$ref: "#/components/requestBodies/Reset"}
              responses: *resetResponses
          /api/client/serviceapikey/usage:
            get:
              operationId: clientUsage
              tags: [client]
              summary: Counted uses of the client's own keys.
              security: [{client: []}]
              parameters: *usageParameters
              responses: *usageResponses
            post:
              operationId: clientUsagePost
              tags: [client]
              summary: Counted uses of the client's own keys (parameters in the body).
              security: [{client: []}]
              requestBody: {$ref: "#/components/requestBodies/Usage"}
              responses: *usageResponses
          /health:
            get:
              operationId: health
              tags: [operations]
              summary: Whether the server is ready.
              security: []
              responses:
                "200":
                  description: Ready (the server listens only after recovery).
                  content:
                    application/json:
                      schema:
                        type: object
                        required: [result, error]
                        properties:
                          result: {const: ok}
                          error: {type: "null"}
                "503":
                  description: Not ready (a node of several not yet caught up with PostgreSQL, or not allowed to join).
                  content:
                    application/json:
                      schema: {$ref: "#/components/schemas/Failure"}
          /metrics:
            get:
              operationId: metrics
              tags: [operations]
              summary: Prometheus metrics.
              description: Served only with `--metrics` (the default), and only to the addresses in `--metrics-allow` (default loopback).
              security: []
              responses:
                "200":
                  description: The Prometheus text exposition format.
                  content:
                    text/plain:
                      schema: {type: string}
                "403":
                  description: The caller's address is not in `--metrics-allow`.
                  content:
                    application/json:
                      schema: {$ref: "#/components/schemas/Failure"}
                "404":
                  description: Metrics are off (`--no-metrics`).
                  content:
                    application/json:
                      schema: {$ref: "#/components/schemas/Failure"}
          /openapi.yaml:
            get:
              operationId: openAPIDocument
              tags: [operations]
              summary: This document.
              security: []
              responses:
                "200":
                  description: The OpenAPI document, as in `docs/openapi.yaml`.
                  content:
                    application/yaml:
                      schema:
                        type: object
                        required: [openapi, info, paths]
        components:
          securitySchemes:
            admin:
              type: http
              scheme: basic
              description: User `admin`, password the admin token (`--admin-token-file`).
            client:
              type: http
              scheme: basic
              description: User `client`, password the client's API token (from `admin/client/token_reset`).
          parameters:
            key:
              name: key
              in: query
              description: The API key, matched exactly (byte for byte, case-sensitive, dashes included).
              schema: {type: string}
              example: 2140E346-A7A1C826-93389570-C60E30D6
            reference_key:
              name: key
              in: query
              description: The order's key; `order_id` wins when both are given.
              schema: {type: string}
            cost:
              name: cost
              in: query
              schema: {$ref: "#/components/schemas/Cost"}
            request_id:
              name: request_id
              in: query
              schema: {$ref: "#/components/schemas/RequestID"}
            order_id:
              name: order_id
              in: query
              schema: {$ref: "#/components/schemas/ID"}
            order_id_required:
              name: order_id
              in: query
              required: true
              schema: {$ref: "#/components/schemas/ID"}
            client_id:
              name: client_id
              in: query
              schema: {$ref: "#/components/schemas/ID"}
            client_id_required:
              name: client_id
              in: query
              required: true
              schema: {$ref: "#/components/schemas/ID"}
            config:
              name: config
              in: query
              description: The whole config, in PHP brackets (`config[custom_tier]=pro`).
              style: deepObject
              explode: true
              schema: {$ref: "#/components/schemas/Config"}
            status:
              name: status
              in: query
              schema: {$ref: "#/components/schemas/Status"}
            expires_at:
              name: expires_at
              in: query
              description: "`YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC) or Unix seconds; empty for never."
              schema: {$ref: "#/components/schemas/ExpiryText"}
            valid:
              name: valid
              in: query
              description: "`true` makes the key active, `false` suspends it (also `1`, `0`)."
              schema: {type: boolean}
            api_key:
              name: api_key
              in: query
              description: Only compared with the order's key; a different one is refused (use `reset`).
              schema: {type: string}
            grace_seconds:
              name: grace_seconds
              in: query
              schema: {$ref: "#/components/schemas/GraceSeconds"}
            month:
              name: month
              in: query
              schema: {$ref: "#/components/schemas/Month"}
            after_order_id:
              name: after_order_id
              in: query
              description: Only orders above this one (a cursor that skips nothing when records are deleted between pages).
              schema: {type: integer, format: int64}
            page:
              name: page
              in: query
              schema: {$ref: "#/components/schemas/PageNumber"}
            per_page:
              name: per_page
              in: query
              schema: {$ref: "#/components/schemas/PerPage"}
          requestBodies:
            Key:
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/KeyParameters"}
                  examples:
                    readme:
                      value: {key: 2140E346-A7A1C826-93389570-C60E30D6}
                application/x-www-form-urlencoded:
                  schema: {$ref: "#/components/schemas/KeyParameters"}
            Reference:
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/ReferenceParameters"}
                application/x-www-form-urlencoded:
                  schema: {$ref: "#/components/schemas/ReferenceParameters"}
            Reset:
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/ResetParameters"}
                application/x-www-form-urlencoded:
                  schema: {$ref: "#/components/schemas/ResetParameters"}
            Order:
              required: true
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/OrderParameters"}
                application/x-www-form-urlencoded:
                  schema: {$ref: "#/components/schemas/OrderParameters"}
            List:
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/ListParameters"}
                application/x-www-form-urlencoded:
                  schema: {$ref: "#/components/schemas/ListParameters"}
            Usage:
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/UsageParameters"}
                application/x-www-form-urlencoded:
                  schema: {$ref: "#/components/schemas/UsageParameters"}
          responses:
            Malformed:
              description: "The request cannot be read: bad JSON, bad percent-encoding, invalid UTF-8, an unknown `Content-Type`, or HTTP itself (then the connection closes). The message starts with `Malformed` for the first four."
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            Unauthorized:
              description: "Authentication failed: 201 no `Authorization` header, 202 not Basic or not `user:password`, 203 a user other than `admin` or `client`, 204 a wrong admin token, 205 an unknown client token, 206 the other role's credentials. The message is `Authentication Failed`."
              headers:
                WWW-Authenticate:
                  required: true
                  schema: {type: string, const: Basic realm="apikeyd"}
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            NotFound:
              description: "An unknown method (740, `Guest API call nope does not exist in module serviceapikey`) or a path outside `/api/{role}/{module}/{method}` and the paths here (404). No operation lists it, since it answers the paths the document does not have."
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            MethodNotAllowed:
              description: A method other than GET or POST (other than GET or HEAD on `/health`, `/metrics` and `/openapi.yaml`). No operation lists it, since it answers the methods the document has no operation for.
              headers:
                Allow:
                  required: true
                  schema: {type: string}
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            ContentTooLarge:
              description: A body over `--max-body-bytes` (1 MiB by default); the connection is closed.
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            URITooLong:
              description: A request target (path and query) over 8 KiB.
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            HeadersTooLarge:
              description: Headers over 16 KiB or 100 fields; the connection is closed.
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            RateLimited:
              description: "The caller's address is over its rate (`Rate limit exceeded. Please try again later.`): all its API calls, or its failed key lookups and authentications."
              headers:
                Retry-After:
                  required: true
                  description: Seconds until the caller may try again.
                  schema: {type: integer, minimum: 1}
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
            Unavailable:
              description: "Writes are stopped (a journal write or fsync failed; the message starts `Writes are stopped`), a snapshot failed (a full disk; it costs no data), the engine is closing, or, with several nodes, PostgreSQL cannot take the write."
              content:
                application/json:
                  schema: {$ref: "#/components/schemas/Failure"}
          schemas:
            ID:
              type: integer
              format: int64
              minimum: 1
              maximum: 9223372036854775807
            Cost:
              description: Units of the monthly quota this use counts (default 1; 0 consumes nothing).
              type: integer
              format: int64
              minimum: 0
              maximum: 1000000000
            RequestID:
              description: Makes the verify idempotent for 24 hours (1 to 128 bytes).
              type: string
              minLength: 1
              maxLength: 128
            GraceSeconds:
              description: How long the old key keeps working (default 0, at once).
              type: integer
              minimum: 0
              maximum: 2592000
            Month:
              description: A calendar month in UTC (default the current one).
              type: string
              pattern: "^[0-9]{4}-(0[1-9]|1[0-2])$"
              example: "2026-11"
            PageNumber:
              type: integer
              format: int64
              minimum: 1
            PerPage:
              description: Records a page (default 100).
              type: integer
              minimum: 1
              maximum: 1000
            Status:
              type: string
              enum: [active, suspended, canceled]
            Config:
              description: |
                Generation options (`length` 1 to 255, `split`, `split_interval`, `case` `upper`, `lower` or
                `mixed`) and custom parameters (members starting `custom_`), stored as given. On update it
                replaces the whole config.
              type: object
              example: {custom_monthlyLimit: 250, custom_tier: pro}
            Time:
              description: "`YYYY-MM-DD HH:MM:SS` in UTC."
              type: string
              pattern: "^[0-9]{4,}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
            ExpiryText:
              description: "`YYYY-MM-DD HH:MM:SS` (also with `T`, and `Z` or `+00:00` after it) or `YYYY-MM-DD`, in UTC, or Unix seconds; empty for never."
              type: string
              pattern: "^([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](Z|\\+00:?00)?)?|[-+]?[0-9]{1,18})?$"
            Expiry:
              description: "`YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC) or Unix seconds; null or empty for never."
              oneOf:
                - $ref: "#/components/schemas/ExpiryText"
                - type: integer
                  format: int64
                - type: "null"
            KeyParameters:
              type: object
              properties:
                key: {type: string}
            VerifyParameters:
              type: object
              properties:
                key: {type: string}
                cost: {$ref: "#/components/schemas/Cost"}
                request_id: {$ref: "#/components/schemas/RequestID"}
            CreateParameters:
              type: object
              required: [client_id]
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
                client_id: {$ref: "#/components/schemas/ID"}
                config: {$ref: "#/components/schemas/Config"}
                status: {$ref: "#/components/schemas/Status"}
                expires_at: {$ref: "#/components/schemas/Expiry"}
            ReferenceParameters:
              type: object
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
                key: {type: string}
            ResetParameters:
              type: object
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
                key: {type: string}
                grace_seconds: {$ref: "#/components/schemas/GraceSeconds"}
            UpdateParameters:
              type: object
              required: [order_id]
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
                config: {$ref: "#/components/schemas/Config"}
                valid: {type: boolean}
                status: {$ref: "#/components/schemas/Status"}
                expires_at: {$ref: "#/components/schemas/Expiry"}
                api_key: {type: string}
            OrderParameters:
              type: object
              required: [order_id]
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
            ClientParameters:
              type: object
              required: [client_id]
              properties:
                client_id: {$ref: "#/components/schemas/ID"}
            ListParameters:
              type: object
              properties:
                client_id: {$ref: "#/components/schemas/ID"}
                status: {$ref: "#/components/schemas/Status"}
                after_order_id: {type: integer, format: int64}
                page: {$ref: "#/components/schemas/PageNumber"}
                per_page: {$ref: "#/components/schemas/PerPage"}
            UsageParameters:
              type: object
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
                key: {type: string}
                client_id: {$ref: "#/components/schemas/ID"}
                month: {$ref: "#/components/schemas/Month"}
            Failure:
              description: The envelope of a failure.
              type: object
              required: [result, error]
              properties:
                result: {type: "null"}
                error:
                  type: object
                  required: [message, code]
                  properties:
                    message: {type: string}
                    code: {type: integer}
            EngineError:
              description: An engine error, answered with HTTP 200 as FOSSBilling does.
              type: object
              required: [result, error]
              properties:
                result: {type: "null"}
                error:
                  type: object
                  required: [message, code]
                  properties:
                    message: {type: string}
                    code: {const: 9999}
            BooleanResult:
              type: object
              required: [result, error]
              properties:
                result: {type: boolean}
                error: {type: "null"}
            TrueResult:
              type: object
              required: [result, error]
              properties:
                result: {const: true}
                error: {type: "null"}
            Record:
              description: One order's key. `api_key` is null with hashed key storage, except in the answers of `create` and `reset`.
              type: object
              required: [order_id, client_id, api_key, config, status, expires_at, created_at, updated_at]
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
                client_id: {$ref: "#/components/schemas/ID"}
                api_key: {type: [string, "null"]}
                config: {$ref: "#/components/schemas/Config"}
                status: {$ref: "#/components/schemas/Status"}
                expires_at:
                  description: "`YYYY-MM-DD HH:MM:SS` in UTC; null for never."
                  type: [string, "null"]
                  pattern: "^[0-9]{4,}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$"
                created_at: {$ref: "#/components/schemas/Time"}
                updated_at: {$ref: "#/components/schemas/Time"}
            RecordResult:
              type: object
              required: [result, error]
              properties:
                result: {$ref: "#/components/schemas/Record"}
                error: {type: "null"}
            Page:
              type: object
              required: [list, total, page, per_page]
              properties:
                list:
                  type: array
                  items: {$ref: "#/components/schemas/Record"}
                total: {type: integer, minimum: 0}
                page: {type: integer, minimum: 1}
                per_page: {type: integer, minimum: 1}
            Info:
              type: object
              required: [valid, config]
              properties:
                valid: {type: integer, enum: [0, 1]}
                config:
                  description: The custom parameters, without their `custom_` prefix.
                  type: object
            Verification:
              type: object
              required: [valid, code, config]
              properties:
                valid: {type: integer, enum: [0, 1]}
                code:
                  type: string
                  enum: [VALID, NOT_FOUND, SUSPENDED, CANCELED, EXPIRED, USAGE_EXCEEDED, RATE_LIMITED]
                config:
                  description: The custom parameters, without their `custom_` prefix (`{}` for `NOT_FOUND`).
                  type: object
                usage:
                  description: Only for a key with `custom_monthlyLimit`.
                  type: object
                  required: [limit, used, remaining, reset_at]
                  properties:
                    limit: {type: integer}
                    used: {type: integer}
                    remaining: {type: integer}
                    reset_at: {type: string}
                rate_limit:
                  description: Only for a key with `custom_rateLimit`.
                  type: object
                  required: [limit, remaining, reset_in_ms]
                  properties:
                    limit: {type: integer}
                    remaining: {type: integer}
                    reset_in_ms: {type: integer}
            OrderUsage:
              type: object
              required: [order_id, month, used, limit, remaining, reset_at]
              properties:
                order_id: {$ref: "#/components/schemas/ID"}
                month: {type: string}
                used: {type: integer}
                limit: {type: [integer, "null"]}
                remaining: {type: [integer, "null"]}
                reset_at: {type: string}
            ClientUsage:
              type: object
              required: [client_id, month, used, keys]
              properties:
                client_id: {$ref: "#/components/schemas/ID"}
                month: {type: string}
                used: {type: integer}
                keys:
                  type: array
                  items:
                    type: object
                    required: [order_id, used, limit]
                    properties:
                      order_id: {$ref: "#/components/schemas/ID"}
                      used: {type: integer}
                      limit: {type: [integer, "null"]}

        """#
}
