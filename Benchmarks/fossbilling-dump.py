#!/usr/bin/env python3
"""Writes a realistic mysqldump of a FOSSBilling database, restricted to the three tables an
apikeyd import reads: `client`, `client_order` and `service_apikey`.

Schema sources (FOSSBilling/FOSSBilling, commit 56a0871df1240dc1d0d12c1a278fbe3678821982,
2026-08-22; structure.sql last changed in 29f45792436aa7142dfa30768d42f441f0342b59):
  - `client`, `client_order`: src/install/sql/structure.sql (CREATE TABLE ... CHARSET=utf8);
  - `service_apikey`: not in structure.sql; it is created by Service::install() in
    src/modules/Serviceapikey/Service.php (`id` bigint(20) NOT NULL AUTO_INCREMENT UNIQUE,
    `client_id` bigint(20) NOT NULL, `api_key` varchar(255), `config` text NOT NULL,
    `created_at` datetime, `updated_at` datetime, PRIMARY KEY (`id`), CHARSET=utf8).
The CREATE TABLE text below is what MariaDB 10.11 (Debian 12) prints for that DDL in a
FOSSBilling database (created by the installer with CHARACTER SET utf8), i.e. utf8mb3.
How the module fills the rows (Service.php):
  - action_create: service_apikey row with client_id and config = the order's config
    (client_order.config, PHP json_encode text); api_key stays NULL until action_activate;
  - action_activate / resetApiKey: api_key = generateKey(config): bin2hex(random_bytes), cut
    to `length` (default 32), dashes every `split_interval` (default 8) unless `split` is
    falsy ("0"), case `upper` (default), `lower` or `mixed`;
  - the order links to it by client_order.service_id = service_apikey.id and
    client_order.service_type = 'apikey' (Product\\Service::APIKEY);
  - updateApiKey rewrites service_apikey.config only (so it may differ from the order's);
  - order statuses (Order\\Entity\\Order): pending_setup, failed_setup, failed_renew, active,
    canceled, suspended;
  - client.api_token: varchar(128), Profile\\Service sets it to Tools::generatePassword(32)
    (32 chars [a-zA-Z0-9]); older installations have 32-char md5 hex tokens; NULL until reset.

Output format: byte-for-byte what `mariadb-dump fossbilling client client_order service_apikey`
of MariaDB 10.11 (Debian mariadb-client) writes (--flavor mariadb, the default; checked by
loading the dump and dumping it again), or MySQL 8.0 mysqldump's layout (--flavor mysql:
one-line extended INSERTs, `/*!50503 SET NAMES utf8mb4 */`, no int display widths).
--style extended: mysqldump's default multi-row INSERTs, split by net_buffer_length (1046528);
--style single: --skip-extended-insert; --style columns: --complete-insert --skip-extended-insert.

--expected FILE writes JSON Lines of what an importer must produce (computed here, never by the
program under test): one line per imported key in order_id order, then one per client with an
api_token in client id order, then a summary line. Import rules: orders with service_type
'apikey' only; status active/suspended/canceled kept, failed_renew -> suspended; pending_setup
and failed_setup skipped (counted by status, whatever their service row); a remaining order
whose service row has api_key NULL is skipped as no_api_key; service_apikey rows without an
order are ignored; config is service_apikey.config decoded (PHP's `[]` for an empty config
means {}); created_at/updated_at are the service_apikey row's, expires_at the order's.
"""

import argparse
import base64
import calendar
import json
import random
import sys
import time

NET_BUFFER_LENGTH = 1046528  # mysqldump's default net_buffer_length (1 MiB - 1025, rounded to 1 KiB)
DUMP_DATE = "2026-01-15 03:00:01"  # fixed, so that a seed gives identical bytes
EPOCH_DAYS_START = (2017, 1, 1)

CLIENT_COLUMNS = [
    "id", "aid", "client_group_id", "role", "auth_type", "email", "billing_email", "pass", "salt",
    "status", "email_approved", "tax_exempt", "type", "first_name", "last_name", "gender",
    "birthday", "phone_cc", "phone", "company", "company_vat", "company_number", "address_1",
    "address_2", "city", "state", "postcode", "country", "notes", "currency", "lang", "timezone",
    "ip", "api_token", "referred_by",
] + ["custom_%d" % i for i in range(1, 21)] + ["created_at", "updated_at"]

ORDER_COLUMNS = [
    "id", "client_id", "product_id", "form_id", "promo_id", "promo_recurring", "promo_used",
    "group_id", "group_master", "invoice_option", "title", "currency", "unpaid_invoice_id",
    "service_id", "service_type", "period", "quantity", "unit", "price", "discount", "status",
    "reason", "notes", "config", "suspension_grace_days", "referred_by", "expires_at",
    "activated_at", "suspended_at", "unsuspended_at", "canceled_at", "created_at", "updated_at",
]

APIKEY_COLUMNS = ["id", "client_id", "api_key", "config", "created_at", "updated_at"]

CLIENT_DDL = """CREATE TABLE `client` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `aid` varchar(255) DEFAULT NULL COMMENT 'Alternative id for foreign systems',
  `client_group_id` bigint(20) DEFAULT NULL,
  `role` varchar(30) NOT NULL DEFAULT 'client' COMMENT 'client',
  `auth_type` varchar(255) DEFAULT NULL,
  `email` varchar(255) DEFAULT NULL,
  `billing_email` varchar(255) DEFAULT NULL,
  `pass` varchar(255) DEFAULT NULL,
  `salt` varchar(255) DEFAULT NULL,
  `status` varchar(30) DEFAULT 'active' COMMENT 'active, suspended, canceled',
  `email_approved` tinyint(1) DEFAULT NULL,
  `tax_exempt` tinyint(1) DEFAULT 0,
  `type` varchar(100) DEFAULT NULL,
  `first_name` varchar(100) DEFAULT NULL,
  `last_name` varchar(100) DEFAULT NULL,
  `gender` varchar(20) DEFAULT NULL,
  `birthday` date DEFAULT NULL,
  `phone_cc` varchar(10) DEFAULT NULL,
  `phone` varchar(100) DEFAULT NULL,
  `company` varchar(100) DEFAULT NULL,
  `company_vat` varchar(100) DEFAULT NULL,
  `company_number` varchar(255) DEFAULT NULL,
  `address_1` varchar(100) DEFAULT NULL,
  `address_2` varchar(100) DEFAULT NULL,
  `city` varchar(100) DEFAULT NULL,
  `state` varchar(100) DEFAULT NULL,
  `postcode` varchar(100) DEFAULT NULL,
  `country` varchar(100) DEFAULT NULL,
  `notes` text DEFAULT NULL,
  `currency` varchar(10) DEFAULT NULL,
  `lang` varchar(10) DEFAULT NULL,
  `timezone` varchar(64) DEFAULT NULL,
  `ip` varchar(45) DEFAULT NULL,
  `api_token` varchar(128) DEFAULT NULL,
  `referred_by` varchar(255) DEFAULT NULL,
""" + "".join("  `custom_%d` text DEFAULT NULL,\n" % i for i in range(1, 21)) + """  `created_at` datetime DEFAULT NULL,
  `updated_at` datetime DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `email` (`email`),
  KEY `alternative_id_idx` (`aid`),
  KEY `client_group_id_idx` (`client_group_id`)
)"""

ORDER_DDL = """CREATE TABLE `client_order` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `client_id` bigint(20) DEFAULT NULL,
  `product_id` bigint(20) DEFAULT NULL,
  `form_id` bigint(20) DEFAULT NULL,
  `promo_id` bigint(20) DEFAULT NULL,
  `promo_recurring` tinyint(1) DEFAULT NULL,
  `promo_used` bigint(20) DEFAULT NULL,
  `group_id` varchar(255) DEFAULT NULL,
  `group_master` tinyint(1) DEFAULT 0,
  `invoice_option` varchar(255) DEFAULT NULL,
  `title` varchar(255) DEFAULT NULL,
  `currency` varchar(20) DEFAULT NULL,
  `unpaid_invoice_id` bigint(20) DEFAULT NULL,
  `service_id` bigint(20) DEFAULT NULL,
  `service_type` varchar(100) DEFAULT NULL,
  `period` varchar(20) DEFAULT NULL,
  `quantity` bigint(20) DEFAULT 1,
  `unit` varchar(100) DEFAULT NULL,
  `price` decimal(18,2) DEFAULT NULL,
  `discount` decimal(18,2) DEFAULT NULL COMMENT 'first invoice discount',
  `status` varchar(50) DEFAULT NULL,
  `reason` varchar(255) DEFAULT NULL COMMENT 'suspend/cancel reason',
  `notes` text DEFAULT NULL,
  `config` text DEFAULT NULL,
  `suspension_grace_days` int(11) DEFAULT NULL,
  `referred_by` varchar(255) DEFAULT NULL,
  `expires_at` datetime DEFAULT NULL,
  `activated_at` datetime DEFAULT NULL,
  `suspended_at` datetime DEFAULT NULL,
  `unsuspended_at` datetime DEFAULT NULL,
  `canceled_at` datetime DEFAULT NULL,
  `created_at` datetime DEFAULT NULL,
  `updated_at` datetime DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `client_id_idx` (`client_id`),
  KEY `product_id_idx` (`product_id`),
  KEY `form_id_idx` (`form_id`),
  KEY `promo_id_idx` (`promo_id`),
  KEY `client_order_status_expires_at_idx` (`status`,`expires_at`),
  KEY `client_order_unpaid_invoice_id_idx` (`unpaid_invoice_id`)
)"""

APIKEY_DDL = """CREATE TABLE `service_apikey` (
  `id` bigint(20) NOT NULL AUTO_INCREMENT,
  `client_id` bigint(20) NOT NULL,
  `api_key` varchar(255) DEFAULT NULL,
  `config` text NOT NULL,
  `created_at` datetime DEFAULT NULL,
  `updated_at` datetime DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `id` (`id`)
)"""

SET_LINES = """/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET @OLD_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS */;
/*!40101 SET @OLD_COLLATION_CONNECTION=@@COLLATION_CONNECTION */;
%s
/*!40103 SET @OLD_TIME_ZONE=@@TIME_ZONE */;
/*!40103 SET TIME_ZONE='+00:00' */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;
/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;
/*!40101 SET @OLD_SQL_MODE=@@SQL_MODE, SQL_MODE='NO_AUTO_VALUE_ON_ZERO' */;
/*!40111 SET @OLD_SQL_NOTES=@@SQL_NOTES, SQL_NOTES=0 */;
"""

TRAILER = """/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;

/*!40101 SET SQL_MODE=@OLD_SQL_MODE */;
/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;
/*!40014 SET UNIQUE_CHECKS=@OLD_UNIQUE_CHECKS */;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
/*!40101 SET CHARACTER_SET_RESULTS=@OLD_CHARACTER_SET_RESULTS */;
/*!40101 SET COLLATION_CONNECTION=@OLD_COLLATION_CONNECTION */;
/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;

-- Dump completed on %s
""" % DUMP_DATE

FLAVORS = {
    "mariadb": {
        "header": "/*M!999999\\- enable the sandbox mode */ \n"
        "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n"
        "--\n-- Host: localhost    Database: fossbilling\n"
        "-- ------------------------------------------------------\n"
        "-- Server version\t10.11.19-MariaDB-0+deb12u1\n\n"
        + SET_LINES % "/*!40101 SET NAMES utf8mb4 */;",
        "client_cs": "/*!40101 SET character_set_client = utf8mb4 */;",
        "table_options": " DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci;",
        "values": "VALUES\n",
        "row_sep": ",\n",
    },
    "mysql": {
        "header": "-- MySQL dump 10.13  Distrib 8.0.40, for Linux (x86_64)\n"
        "--\n-- Host: localhost    Database: fossbilling\n"
        "-- ------------------------------------------------------\n"
        "-- Server version\t8.0.40\n\n"
        + SET_LINES % "/*!50503 SET NAMES utf8mb4 */;",
        "client_cs": "/*!50503 SET character_set_client = utf8mb4 */;",
        "table_options": " DEFAULT CHARSET=utf8mb3;",
        "values": "VALUES ",
        "row_sep": ",",
    },
}


def mysql_ddl(ddl):
    """MySQL 8.0's SHOW CREATE TABLE spelling of the same table."""
    return (ddl.replace("bigint(20)", "bigint").replace("int(11)", "int")
            .replace(" DEFAULT 0,", " DEFAULT '0',").replace(" DEFAULT 1,", " DEFAULT '1',")
            .replace(" text DEFAULT NULL,", " text,"))


# mysql_real_escape_string, as mysqldump applies it to every string column: the other bytes,
# tab and backspace included, are written as they are.
_SQL_ESCAPES = str.maketrans({"\0": "\\0", "\n": "\\n", "\r": "\\r", "\\": "\\\\", "'": "\\'",
                              '"': '\\"', "\x1a": "\\Z"})


def sql_str(value):
    if value is None:
        return "NULL"
    return "'" + value.translate(_SQL_ESCAPES) + "'"


def php_json(value):
    """PHP json_encode with default flags: \\/ for slashes, \\uXXXX for non-ASCII."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def php_truthy(value):
    return value not in (None, False, 0, 0.0, "", "0", [], {})


# ---- service configs: (weight, value as PHP holds it) ----
CONFIGS = [
    (300, {}),
    (30, []),  # json_encode of an empty PHP array, what a product without config stores
    (90, {"length": 16}),
    (60, {"length": "32", "split": "0"}),
    (60, {"split_interval": 4, "case": "lower"}),
    (120, {"custom_tier": "pro", "custom_monthlyLimit": "1000"}),
    (120, {"custom_tier": "free", "custom_monthlyLimit": 100, "custom_rateLimit": "5"}),
    (40, {"custom_tier": "pro", "custom_homepage": "https://example.com/x"}),
    (40, {"custom_city": "Z\u00fcrich", "custom_tier": "starter"}),
    (30, {"length": 24, "case": "mixed", "split_interval": 6}),
    (30, {"custom_note": "O'Brien \"VIP\" C:\\tmp\\keys", "custom_tier": "enterprise"}),
    (20, {"custom_label": "\u65e5\u672c\u8a9e \u00e9t\u00e9", "length": "40", "split": 0}),
    (20, {"custom_tags": ["a", "b/c"], "custom_trial": True, "custom_discount": None,
          "custom_price": 9.99}),
]
# The order's own config when the service's config was later changed by updateApiKey.
OLD_ORDER_CONFIG = php_json({"custom_tier": "free", "custom_monthlyLimit": "50"})

OTHER_TYPES = [
    ("hosting", "Shared Hosting Basic",
     php_json({"domain": {"action": "owndomain", "owndomain_sld": "example",
                          "owndomain_tld": ".com"}, "period": "1M"})),
    ("custom", "Consulting hour", php_json({"period": "1M", "quantity": 1})),
    ("license", "FOSSBilling Pro licence", php_json({"period": "1Y"})),
    ("domain", "example.org", php_json({"action": "register", "register_sld": "example",
                                        "register_tld": ".org", "register_years": 1})),
    ("downloadable", "E-book", "[]"),
]

FIRST_NAMES = ["John", "Zo\u00eb", "J\u00fcrgen", "Fran\u00e7ois", "Mar\u00eda", "\u592a\u90ce",
               "Ay\u015fe", "Li", "D'Arcy", "Anne-Marie", "Robert \"Bob\"", "Ol\u00e1",
               "\u0421\u0435\u0440\u0433\u0435\u0439", "Priya", "Chlo\u00e9", "Bj\u00f6rn"]
LAST_NAMES = ["Smith", "O'Brien", "M\u00fcller", "Garc\u00eda", "\u5c71\u7530", "Nguy\u1ec5n",
              "Back\\slash", "van der Berg", "\u00c5str\u00f6m", "Kowalski", "D\u00edaz",
              "O'Neil-\"Quote\"", "Ivanov", "Sch\u00f6n", "Lee", "Dupont"]
COMPANIES = [None, None, None, "Acme Corp", "M\u00fcller & S\u00f6hne GmbH", "O'Reilly Media",
             "\u682a\u5f0f\u4f1a\u793e\u65e5\u672c", "Foo \"Bar\" Ltd", "C:\\Temp Inc.",
             "Caf\u00e9 \u00e9t\u00e9 SARL"]
ADDRESSES = ["1 Main St", "Rue de l'\u00c9glise 4", "Bahnhofstra\u00dfe 12",
             "\u6771\u4eac\u90fd\u6e2f\u533a 1-2-3", "Flat 2\nFloor 3", "12 \"The Mews\"",
             "Unit 5\\6", "221B Baker Street", "Calle Mayor 7, 2\u00ba"]
CITIES = [("Z\u00fcrich", "ZH", "8001", "CH"), ("Paris", None, "75001", "FR"),
          ("\u6771\u4eac", "\u6771\u4eac\u90fd", "100-0001", "JP"), ("New York", "NY", "10001", "US"),
          ("M\u00fcnchen", "Bayern", "80331", "DE"), ("S\u00e3o Paulo", "SP", "01000-000", "BR"),
          ("Dublin", None, "D02 X285", "IE"), ("Krak\u00f3w", None, "30-001", "PL")]
NOTES = [None, None, None, None, None,
         "Called on 2021-03-04.\nPrefers email.",
         "Windows line\r\nbreaks in notes",
         "Path C:\\Users\\billing\\keys.txt",
         "NUL byte here:\0end",
         "Ctrl-Z here:\x1aend",
         "Says \"hello\" to everyone",
         "It's complicated",
         "Tab\tseparated\tvalues and a backspace\x08",
         "\u041a\u043e\u043c\u043c\u0435\u043d\u0442\u0430\u0440\u0438\u0439, "
         "\u65e5\u672c\u8a9e\u306e\u30e1\u30e2, Gr\u00fc\u00dfe",
         "'; DROP TABLE client; --",
         "tricky ),( and '); inside a string",
         "All of them: ' \" \\ \n \r \0 \x1a \u00e9 \u65e5\u672c"]
REASONS = ["Payment didn't arrive", "Abuse: \"spam\" via API", "Customer asked\nto cancel",
           "Chargeback \\ dispute", None]
LANGS = [("en_US", "USD", "America/New_York"), ("de_DE", "EUR", "Europe/Berlin"),
         ("fr_FR", "EUR", "Europe/Paris"), ("ja_JP", "JPY", "Asia/Tokyo"),
         ("en_US", "USD", None), ("es_ES", "EUR", "Europe/Madrid")]
PRODUCTS = [(1, "API Key Starter", "4.99"), (2, "API Key Pro", "19.00"),
            (3, "API Key Enterprise", "199.00"), (7, "Free API Key", "0.00")]
PERIODS = ["1M", "1M", "1M", "3M", "1Y", None]

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class Dates:
    """Seconds since 2017-01-01 00:00:00 UTC to 'YYYY-MM-DD HH:MM:SS', by table look-up."""

    def __init__(self):
        base = calendar.timegm(EPOCH_DAYS_START + (0, 0, 0))
        self.base = base
        self.days = [time.strftime("%Y-%m-%d", time.gmtime(base + d * 86400)) for d in range(365 * 21)]
        self.hms = [" %02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) for s in range(86400)]

    def at(self, y, m, d):
        return calendar.timegm((y, m, d, 0, 0, 0)) - self.base

    def fmt(self, t):
        return self.days[t // 86400] + self.hms[t % 86400]


class Writer:
    """mysqldump's data section for one table, in the chosen style."""

    def __init__(self, out, flavor, style, table, columns):
        self.out = out
        self.style = style
        self.sep = FLAVORS[flavor]["row_sep"]
        if style == "columns":
            self.pat = "INSERT INTO `%s` (%s) VALUES " % (table, ", ".join("`%s`" % c for c in columns))
        elif style == "single":
            self.pat = "INSERT INTO `%s` VALUES " % table
        else:
            self.pat = "INSERT INTO `%s` %s" % (table, FLAVORS[flavor]["values"])
        self.init_length = len(self.pat) + 4  # as mysqldump counts it
        self.total = None
        self.parts = []

    def row(self, text):
        parts = self.parts
        if self.style != "extended":
            parts.append(self.pat)
            parts.append(text)
            parts.append(";\n")
        else:
            length = 2 + (len(text) if text.isascii() else len(text.encode()))
            if self.total is not None and self.total + length < NET_BUFFER_LENGTH:
                self.total += length
                parts.append(self.sep)
                parts.append(text)
            else:
                if self.total is not None:
                    parts.append(";\n")
                parts.append(self.pat)
                parts.append(text)
                self.total = length + self.init_length
        if len(parts) > 30000:
            self.flush()

    def flush(self):
        self.out.write("".join(self.parts).encode())
        self.parts = []

    def finish(self):
        if self.style == "extended" and self.total is not None:
            self.parts.append(";\n")
        self.flush()


def table_start(out, flavor, name, ddl, auto_increment):
    opts = FLAVORS[flavor]["table_options"]
    if flavor == "mysql":
        ddl = mysql_ddl(ddl)
    text = ("\n--\n-- Table structure for table `%s`\n--\n\n"
            "DROP TABLE IF EXISTS `%s`;\n"
            "/*!40101 SET @saved_cs_client     = @@character_set_client */;\n"
            "%s\n%s ENGINE=InnoDB%s%s\n"
            "/*!40101 SET character_set_client = @saved_cs_client */;\n\n"
            "--\n-- Dumping data for table `%s`\n--\n\n"
            "LOCK TABLES `%s` WRITE;\n"
            "/*!40000 ALTER TABLE `%s` DISABLE KEYS */;\n") % (
        name, name, FLAVORS[flavor]["client_cs"], ddl,
        " AUTO_INCREMENT=%d" % auto_increment if auto_increment else "", opts, name, name, name)
    out.write(text.encode())


def table_end(out, name):
    out.write(("/*!40000 ALTER TABLE `%s` ENABLE KEYS */;\nUNLOCK TABLES;\n" % name).encode())


def main():
    parser = argparse.ArgumentParser(description="Writes a mysqldump of FOSSBilling's client, client_order and service_apikey tables.")
    parser.add_argument("--orders", type=int, default=1000, help="client_order rows of service_type 'apikey'")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", help="dump file (default: stdout)")
    parser.add_argument("--expected", help="JSON Lines of what an importer must produce")
    parser.add_argument("--style", choices=["extended", "single", "columns"], default="extended")
    parser.add_argument("--flavor", choices=["mariadb", "mysql"], default="mariadb")
    parser.add_argument("--verbose", action="store_true", help="print phase times on stderr")
    args = parser.parse_args()
    started = time.monotonic()

    def phase(name):
        if args.verbose:
            print("%7.2f s  %s" % (time.monotonic() - started, name), file=sys.stderr)

    n = max(0, args.orders)
    rng = random.Random(args.seed)
    rand = rng.random

    def randrange(limit):  # rng.randrange's distribution is not needed, its cost is
        return int(rand() * limit)
    getrandbits = rng.getrandbits
    dates = Dates()
    fmt = dates.fmt

    # ---- configs ----
    cfg_weights = [w for w, _ in CONFIGS]
    cfg_sql = []       # SQL literal of the stored JSON text
    cfg_expected = []  # the JSON object an importer must produce
    cfg_keyspec = []   # (length, split interval or 0, case)
    for _, value in CONFIGS:
        text = php_json(value)
        cfg_sql.append(sql_str(text))
        decoded = json.loads(text)
        cfg_expected.append(json.dumps(decoded if isinstance(decoded, dict) else {},
                                       separators=(",", ":"), ensure_ascii=False))
        conf = value if isinstance(value, dict) else {}
        length = int(conf.get("length", 32))
        split = php_truthy(conf.get("split", True))
        cfg_keyspec.append((length, int(conf.get("split_interval", 8)) if split else 0,
                            conf.get("case", "upper")))
    cfg_cum = []
    acc = 0
    for w in cfg_weights:
        acc += w
        cfg_cum.append(acc)
    cfg_total = acc
    # A table of 4096 config picks, indexed by random bits: fast weighted choice.
    cfg_table = []
    for i in range(4096):
        x = (i + 0.5) * cfg_total / 4096
        cfg_table.append(next(k for k, c in enumerate(cfg_cum) if x < c))
    old_order_cfg_sql = sql_str(OLD_ORDER_CONFIG)

    seen_keys = set()

    def make_key(spec):
        length, interval, case = spec
        while True:
            if spec == (32, 8, "upper"):  # the default configuration, most keys
                h = "%032X" % getrandbits(128)
                key = h[:8] + "-" + h[8:16] + "-" + h[16:24] + "-" + h[24:]
                folded = key.lower()
                if folded not in seen_keys:
                    seen_keys.add(folded)
                    return key
                continue
            raw = "%0*x" % ((length + 1) // 2 * 2, getrandbits(4 * ((length + 1) // 2 * 2)))
            raw = raw[:length]
            if interval:
                raw = "-".join(raw[i:i + interval] for i in range(0, length, interval))
            if case == "upper":
                key = raw.upper()
            elif case == "mixed":
                bits = getrandbits(len(raw))
                key = "".join(c.upper() if (bits >> i) & 1 else c for i, c in enumerate(raw))
            else:
                key = raw
            folded = key.lower()  # the column's collation is case-insensitive
            if folded not in seen_keys:
                seen_keys.add(folded)
                return key

    # ---- clients ----
    n_clients = max(1, n // 4)
    t_clients0, t_clients1 = dates.at(2018, 1, 1), dates.at(2025, 6, 30)
    t_orders0, t_orders1 = dates.at(2019, 1, 1), dates.at(2025, 12, 31)
    t_dump = dates.at(2026, 1, 15)
    t_future0, t_future1 = dates.at(2028, 1, 1), dates.at(2035, 12, 31)

    profiles = []
    for _ in range(997):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, state, postcode, country = rng.choice(CITIES)
        lang, currency, tz = rng.choice(LANGS)
        company = rng.choice(COMPANIES)
        birthday = None if rand() < 0.6 else "%04d-%02d-%02d" % (1950 + randrange(55), 1 + randrange(12), 1 + randrange(28))
        fields = [
            "company" if company else ("individual" if rand() < 0.7 else None),  # type
            first, last,
            None,  # gender
            birthday,
            rng.choice(["1", "49", "33", "81", "44", None]),  # phone_cc
            None if rand() < 0.3 else "%09d" % randrange(10 ** 9),  # phone
            company,
            None if not company or rand() < 0.5 else "EU%09d" % randrange(10 ** 9),  # company_vat
            None,  # company_number
            rng.choice(ADDRESSES), None if rand() < 0.8 else "Apt. %d" % (1 + randrange(98)),
            city, state, postcode, country,
            rng.choice(NOTES),
            currency, lang, tz,
        ]
        profiles.append(",".join(sql_str(f) for f in fields))
    statuses_client = ["'active'"] * 18 + ["'suspended'", "'canceled'"]
    nulls19 = ",".join(["NULL"] * 19)
    email_locals = [sql_str(e)[1:-1] for e in ["user", "o'brien", "j.doe", "billing+api", "dev_team", "jose.garcia"]]
    client_created = []
    client_tokens = []  # (id, token) for the expected file
    client_rows = []
    span = t_clients1 - t_clients0
    for cid in range(1, n_clients + 1):
        created = t_clients0 + span * (cid - 1) // n_clients + randrange(max(1, span // n_clients))
        client_created.append(created)
        updated = created if rand() < 0.5 else min(t_dump, created + randrange(86400 * 500))
        if rand() < 0.5:
            token = None
        elif rand() < 0.4:
            token = "%032x" % getrandbits(128)  # legacy md5-style tokens
        else:
            token = "".join(ALNUM[(b >> 2) % 62] for b in rng.randbytes(32))
        if token is not None:
            client_tokens.append((cid, token))
        pw = base64.b64encode(rng.randbytes(40), b"./").decode()[:53]
        custom1 = "NULL" if rand() < 0.9 else sql_str("Ref #%d / \u00e9" % randrange(10 ** 6))
        client_rows.append("(%d,NULL,%s,'client',NULL,'%s%d@example.com',NULL,'$2y$10$%s',NULL,%s,%d,0,%s,'198.51.100.%d',%s,NULL,%s,%s,'%s','%s')" % (
            cid, "NULL" if rand() < 0.8 else "1", email_locals[cid % 6], cid, pw,
            statuses_client[randrange(20)], rand() < 0.7, profiles[randrange(997)], 1 + randrange(254),
            "NULL" if token is None else "'" + token + "'", custom1, nulls19, fmt(created), fmt(updated)))

    phase("clients generated")
    # ---- orders ----
    n_other = max(3, n // 20) if n else 0
    total_orders = n + n_other
    is_apikey = [True] * n + [False] * n_other
    rng.shuffle(is_apikey)
    order_ids = []
    oid = 0
    for _ in range(total_orders):
        oid += 1 + (rand() < 0.02) + (rand() < 0.005) * 3  # deleted orders leave gaps
        order_ids.append(oid)

    status_pick = (["active"] * 800 + ["suspended"] * 55 + ["canceled"] * 55 + ["failed_renew"] * 20
                   + ["pending_setup"] * 45 + ["failed_setup"] * 25)
    apikey_orders = []  # indices into the order list, in order id order
    o_client = [0] * total_orders
    o_created = [0] * total_orders
    o_status = [None] * total_orders
    o_cfg = [0] * total_orders
    o_has_service = [False] * total_orders
    o_key_null = [False] * total_orders
    ospan = t_orders1 - t_orders0
    step = max(1, ospan // max(1, total_orders))
    for i in range(total_orders):
        created = t_orders0 + ospan * i // max(1, total_orders) + randrange(step)
        o_created[i] = created
        # a client that existed when the order was placed
        limit = min(n_clients, max(1, int(n_clients * (i + 1) / total_orders) + 1))
        o_client[i] = 1 + randrange(limit)
        if is_apikey[i]:
            apikey_orders.append(i)
            st = status_pick[randrange(1000)]
            o_status[i] = st
            o_cfg[i] = cfg_table[getrandbits(12)]
            if st == "pending_setup":
                o_has_service[i] = rand() < 0.4
                o_key_null[i] = True
            elif st == "failed_setup":
                o_has_service[i] = True
                o_key_null[i] = rand() < 0.7
            else:
                o_has_service[i] = True
                o_key_null[i] = rand() < 0.005

    phase("orders generated")
    # Service ids: allocated at activation, which follows ordering with some jitter, plus
    # orphan rows (orders deleted without the module's cleanup) and deleted ids.
    with_service = [i for i in apikey_orders if o_has_service[i]]
    jittered = sorted(range(len(with_service)), key=lambda k: k + rand() * 40)
    n_orphans = max(2, n // 200) if n else 0
    slots = [with_service[k] for k in jittered] + [-1] * n_orphans
    # orphans go anywhere in the id sequence
    for k in range(len(slots) - n_orphans, len(slots)):
        j = randrange(k + 1)
        slots[k], slots[j] = slots[j], slots[k]
    service_of = {}
    svc_ids = []
    sid = 0
    for s in slots:
        sid += 1 + (rand() < 0.01)
        svc_ids.append(sid)
        if s >= 0:
            service_of[s] = len(svc_ids) - 1
    # no order may have service_id equal to its own id: a join on the wrong column must fail
    for _ in range(10):
        clashes = [pos for pos, i in enumerate(with_service) if svc_ids[service_of[i]] == order_ids[i]]
        if not clashes:
            break
        for pos in clashes:
            i = with_service[pos]
            k = service_of[i]
            if len(with_service) > 1:  # swap service rows with a neighbouring order
                other = with_service[pos - 1] if pos else with_service[1]
                service_of[i], service_of[other] = service_of[other], k
            else:  # shift this and the following ids up by one
                for j in range(k, len(svc_ids)):
                    svc_ids[j] += 1
    max_sid = svc_ids[-1] if svc_ids else 0

    phase("service ids assigned")
    # Per service slot: created, updated, api key, config index, client id.
    n_slots = len(slots)
    s_created = [0] * n_slots
    s_updated = [0] * n_slots
    s_key = [None] * n_slots
    s_cfg = [0] * n_slots
    s_client = [0] * n_slots
    o_expires = [None] * total_orders
    o_cfg_changed = [False] * total_orders
    for i in with_service:
        k = service_of[i]
        r = rand()
        delay = randrange(600) if r < 0.7 else randrange(86400 * 3)
        created = o_created[i] + delay
        updated = created if rand() < 0.6 else min(t_dump, created + randrange(86400 * 400))
        s_created[k], s_updated[k] = created, updated
        s_client[k] = o_client[i]
        s_cfg[k] = o_cfg[i]
        if not o_key_null[i]:
            s_key[k] = make_key(cfg_keyspec[o_cfg[i]])
        o_cfg_changed[i] = rand() < 0.08
    for k, s in enumerate(slots):
        if s < 0:
            created = t_orders0 + randrange(ospan)
            s_created[k] = created
            s_updated[k] = created
            s_client[k] = 1 + randrange(n_clients)
            s_cfg[k] = cfg_table[getrandbits(12)]
            s_key[k] = make_key(cfg_keyspec[s_cfg[k]])
    for i in range(total_orders):
        r = rand()
        if r < 0.65:
            continue
        if r < 0.77:
            o_expires[i] = min(t_dump - 86400, o_created[i] + 86400 * (30 + randrange(700)))
        else:
            o_expires[i] = t_future0 + randrange(t_future1 - t_future0)

    phase("services and keys generated")
    out = open(args.output, "wb", buffering=1 << 22) if args.output else sys.stdout.buffer
    flavor = FLAVORS[args.flavor]
    out.write(flavor["header"].encode())

    table_start(out, args.flavor, "client", CLIENT_DDL, n_clients + 1)
    w = Writer(out, args.flavor, args.style, "client", CLIENT_COLUMNS)
    for row in client_rows:
        w.row(row)
    w.finish()
    table_end(out, "client")
    del client_rows

    phase("client table written")
    table_start(out, args.flavor, "client_order", ORDER_DDL, (order_ids[-1] + 1) if order_ids else 0)
    w = Writer(out, args.flavor, args.style, "client_order", ORDER_COLUMNS)
    emit = w.row
    other_services = max(1, max_sid)
    qdays = ["'" + d for d in dates.days]
    qhms = [h + "'" for h in dates.hms]
    products_sql = [(p, sql_str(t), price) for p, t, price in PRODUCTS]
    others_sql = [("'%s'" % name, sql_str(t), sql_str(c)) for name, t, c in OTHER_TYPES]
    periods_sql = ["NULL" if p is None else "'%s'" % p for p in PERIODS]
    reasons_sql = [sql_str(r) for r in REASONS]
    note_sql = sql_str("Imported from \"legacy\" system\\v1")
    no_activation = ("pending_setup", "failed_setup")
    stopped = ("suspended", "failed_renew", "canceled")
    template = ("(%d,%d,%d,NULL,NULL,NULL,NULL,'%d',1,'issue-invoice',%s,'USD',NULL,%s,%s,%s,1,'product',"
                "%s,0.00,'%s',%s,%s,%s,NULL,NULL,%s,%s,%s,NULL,%s,%s,%s)")
    for i in range(total_orders):
        created = o_created[i]
        e = o_expires[i]
        expires = "NULL" if e is None else qdays[e // 86400] + qhms[e % 86400]
        if is_apikey[i]:
            product, title, price = products_sql[i & 3]
            st = o_status[i]
            if o_has_service[i]:
                k = service_of[i]
                service = str(svc_ids[k])
                if st in no_activation:
                    activated = "NULL"
                else:
                    t = s_created[k]
                    activated = qdays[t // 86400] + qhms[t % 86400]
                updated = s_updated[k]
                if updated < created:
                    updated = created
            else:
                service = activated = "NULL"
                updated = created
            config = old_order_cfg_sql if o_cfg_changed[i] else cfg_sql[o_cfg[i]]
            stype = "'apikey'"
            period = periods_sql[i % 6]
        else:
            stype, title, config = others_sql[i % 5]
            product, price = 20 + i % 5, "9.95"
            st = "active" if rand() < 0.85 else "canceled"
            # ids of other service tables: the same numbers as service_apikey ids, on purpose
            service = str(1 + int(rand() * other_services))
            t = created + 60
            activated = qdays[t // 86400] + qhms[t % 86400]
            updated = t
            period = "'1M'"
        suspended_at = canceled_at = reason = "NULL"
        if st in stopped:
            t = min(t_dump, updated + int(rand() * 2592000))
            when = qdays[t // 86400] + qhms[t % 86400]
            if st == "canceled":
                canceled_at = when
            else:
                suspended_at = when
            reason = reasons_sql[i % 5]
        emit(template % (
            order_ids[i], o_client[i], product, 1000 + i, title, service, stype, period, price, st,
            reason, "NULL" if i % 97 else note_sql, config, expires, activated, suspended_at,
            canceled_at, qdays[created // 86400] + qhms[created % 86400],
            qdays[updated // 86400] + qhms[updated % 86400]))
    w.finish()
    table_end(out, "client_order")

    phase("client_order table written")
    table_start(out, args.flavor, "service_apikey", APIKEY_DDL, max_sid + 1 if n_slots else 0)
    w = Writer(out, args.flavor, args.style, "service_apikey", APIKEY_COLUMNS)
    for k in range(n_slots):
        key = s_key[k]
        w.row("(%d,%d,%s,%s,'%s','%s')" % (
            svc_ids[k], s_client[k], "NULL" if key is None else "'" + key + "'", cfg_sql[s_cfg[k]],
            fmt(s_created[k]), fmt(s_updated[k])))
    w.finish()
    table_end(out, "service_apikey")
    out.write(TRAILER.encode())
    out.flush()
    if args.output:
        out.close()

    phase("service_apikey table written")
    if args.expected:
        mapped = {"active": "active", "suspended": "suspended", "canceled": "canceled",
                  "failed_renew": "suspended"}
        skipped = {"pending_setup": 0, "failed_setup": 0, "no_api_key": 0}
        imported = 0
        f = open(args.expected, "w", encoding="utf-8", buffering=1 << 22)
        lines = []
        for i in apikey_orders:
            if len(lines) > 20000:
                f.write("".join(lines))
                lines = []
            st = o_status[i]
            if st in ("pending_setup", "failed_setup"):
                skipped[st] += 1
                continue
            k = service_of[i]
            if s_key[k] is None:
                skipped["no_api_key"] += 1
                continue
            imported += 1
            expires = "null" if o_expires[i] is None else '"' + fmt(o_expires[i]) + '"'
            lines.append('{"order_id":%d,"client_id":%d,"api_key":"%s","config":%s,"status":"%s","expires_at":%s,"created_at":"%s","updated_at":"%s"}\n' % (
                order_ids[i], o_client[i], s_key[k], cfg_expected[s_cfg[k]], mapped[st], expires,
                fmt(s_created[k]), fmt(s_updated[k])))
        for cid, token in client_tokens:
            lines.append('{"client_id":%d,"api_token":"%s"}\n' % (cid, token))
        lines.append(json.dumps({"summary": {"imported": imported, "skipped": skipped}},
                                separators=(",", ":")) + "\n")
        f.write("".join(lines))
        f.close()
        phase("expected file written")


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        sys.exit(1)
