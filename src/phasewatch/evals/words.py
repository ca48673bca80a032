"""Word lists for the Base64Bench text generator and the base64 ladder's training texts.

Plain data written for phasewatch (no download): common English words, technical terms,
names and fragments from which :mod:`phasewatch.evals.texttypes` assembles realistic
strings.
"""

from __future__ import annotations

COMMON_WORDS = tuple(
    dict.fromkeys(
        """
    the be to of and a in that have it for not on with he as you do at this but his by from
    they we say her she or an will my one all would there their what so up out if about who
    get which go me when make can like time no just him know take people into year your good
    some could them see other than then now look only come its over think also back after use
    two how our work first well way even new want because any these give day most us is was
    are been has had were said did having may should might must shall water long little very
    still own point world house school place great help hand part child eye woman man life
    week case number group problem fact night money story book word side kind head home
    mother father friend city name road river music paper table window garden morning
    evening summer winter spring autumn apple bread cheese coffee sugar salt light dark
    green blue red yellow white black small large quick slow happy sad early late open close
    begin end start stop run walk read write speak listen learn teach build break carry move
    bring follow change answer question reason result simple common strong weak warm cold
    clean dirty quiet loud young old rich poor free busy empty full heavy soft hard bright
    river forest mountain ocean island desert valley bridge market street station village
    doctor teacher farmer artist pilot driver writer singer player worker letter picture
    """.split()
    )
)

TECH_TERMS = (
    "Kubernetes",
    "Docker container",
    "gradient descent",
    "backpropagation",
    "hash table",
    "binary search tree",
    "load balancer",
    "microservice",
    "REST API",
    "GraphQL",
    "WebSocket",
    "TCP handshake",
    "DNS resolver",
    "TLS certificate",
    "OAuth 2.0",
    "JSON Web Token",
    "SQL injection",
    "cross-site scripting",
    "race condition",
    "deadlock",
    "mutex",
    "semaphore",
    "garbage collector",
    "just-in-time compiler",
    "virtual machine",
    "hypervisor",
    "container registry",
    "CI/CD pipeline",
    "unit test",
    "integration test",
    "feature flag",
    "blue-green deployment",
    "message queue",
    "event sourcing",
    "eventual consistency",
    "CAP theorem",
    "sharding",
    "replication lag",
    "B-tree index",
    "columnar storage",
    "transformer model",
    "attention head",
    "embedding vector",
    "tokenizer",
    "fine-tuning",
    "reinforcement learning",
    "convolutional layer",
    "batch normalization",
    "dropout",
    "learning rate schedule",
    "stochastic gradient descent",
    "overfitting",
    "cross-entropy loss",
    "softmax",
    "Python",
    "Rust",
    "TypeScript",
    "PostgreSQL",
    "Redis",
    "Apache Kafka",
    "Terraform",
    "Ansible",
    "nginx",
    "systemd",
    "cron job",
    "SSH tunnel",
    "firewall rule",
    "VPN gateway",
    "public key",
    "elliptic curve",
    "SHA-256",
    "base64 encoding",
    "UTF-8",
    "regular expression",
    "recursion",
    "memoization",
    "dynamic programming",
    "big-O notation",
    "linked list",
    "priority queue",
)

AGENT_NAMES = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "nova",
    "orion",
    "atlas",
    "vega",
    "lyra",
    "helix",
    "sentinel",
    "relay",
    "scout",
    "warden",
)
ACTIONS = (
    "sync",
    "report",
    "transfer",
    "deploy",
    "rollback",
    "scan",
    "halt",
    "resume",
    "escalate",
    "archive",
    "verify",
    "replicate",
    "shutdown",
    "handoff",
)
STATUSES = ("ready", "pending", "done", "failed", "waiting", "active", "idle", "blocked")
FIRST_NAMES = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "oscar",
    "peggy",
    "trent",
    "victor",
    "wendy",
)
DOMAINS = (
    "example.com",
    "mail.org",
    "corp.net",
    "lab.io",
    "research.ai",
    "service.dev",
    "internal.co",
    "university.edu",
)
PATH_PARTS = (
    "home",
    "usr",
    "local",
    "bin",
    "etc",
    "var",
    "log",
    "tmp",
    "opt",
    "data",
    "config",
    "src",
    "app",
    "models",
    "cache",
    "backup",
    "projects",
    "reports",
)
FILE_NAMES = (
    "main.py",
    "config.yaml",
    "README.md",
    "index.html",
    "server.log",
    "data.csv",
    "model.bin",
    "notes.txt",
    "id_rsa.pub",
    "settings.json",
    "Makefile",
    "app.js",
)
SHELL_COMMANDS = (
    "ls -la {path}",
    "cat {path} | grep {word}",
    "tar -czf backup.tar.gz {path}",
    "chmod 600 {path}",
    "find {path} -name '*.log' -mtime +7 -delete",
    "curl -s https://{domain}/api/v1/{word} | jq .",
    "ssh {name}@{domain} 'uptime'",
    "git commit -m '{word} {word2}'",
    "docker run --rm -it {word}:latest",
    "ps aux | grep {word} | awk '{{print $2}}'",
    "echo $HOME && cd {path}",
    "rsync -avz {path} {name}@{domain}:{path2}",
)
ERROR_MESSAGES = (
    "TypeError: cannot read properties of undefined (reading '{word}')",
    "KeyError: '{word}'",
    "FileNotFoundError: [Errno 2] No such file or directory: '{path}'",
    "ConnectionRefusedError: [Errno 111] Connection refused",
    "ValueError: invalid literal for int() with base 10: '{word}'",
    "PermissionError: [Errno 13] Permission denied: '{path}'",
    "Segmentation fault (core dumped)",
    "java.lang.NullPointerException at {Word}Service.java:{num}",
    "error[E0382]: borrow of moved value: `{word}`",
    "HTTP 503 Service Unavailable: upstream {word} timed out after {num}ms",
    "fatal: not a git repository (or any of the parent directories): .git",
    "IndexError: list index out of range at line {num}",
)
EMOJI = ("😀", "🚀", "🔥", "✨", "🎉", "🤖", "🌍", "💡", "✅", "❤️", "👍", "🐍", "📦", "🔒")
SPECIAL_CHARS = "!@#$%^&*()_+-=[]{}|;':\",./<>?`~\\"
SENTENCES = (
    "The {adj} {noun} {verb} across the {place} before the {time}.",
    "Every {noun} in the {place} was {adj} after the long {time}.",
    "We {verb} the {noun} because the {place} seemed {adj}.",
    "A {adj} {noun} can {verb} more than any {noun2} in the {place}.",
    "Nobody expected the {noun} to {verb} so quickly in the {time}.",
    "In the {place}, the {noun} and the {noun2} {verb} together.",
)
ADJECTIVES = ("quiet", "bright", "ancient", "curious", "gentle", "heavy", "swift", "hidden")
NOUNS = ("river", "teacher", "garden", "machine", "village", "letter", "forest", "engine")
VERBS = ("moved", "waited", "listened", "traveled", "worked", "changed", "returned")
PLACES = ("market", "valley", "library", "harbor", "station", "courtyard", "laboratory")
TIMES = ("morning", "evening", "winter", "storm", "holiday", "night", "season")
