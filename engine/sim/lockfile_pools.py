"""Real package names and versions the generator fills lockfiles with.

Benign on purpose: the generator drops any name that is on the IOC list it is
given, so a benign dependency can never be a compromised package by accident.
Versions are real releases (late 2023), newest first; older ones model the
duplicates a real dependency tree holds.
"""

from __future__ import annotations


def _table(block: str) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for line in block.strip().splitlines():
        name, *versions = line.split()
        out[name] = tuple(versions)
    return out


NPM = _table(
    """
lodash 4.17.21 4.17.20 4.17.15
react 18.2.0 17.0.2
react-dom 18.2.0 17.0.2
express 4.18.2 4.17.3
chalk 4.1.2 5.3.0 2.4.2
commander 11.1.0 9.5.0 2.20.3
debug 4.3.4 2.6.9 3.2.7
ms 2.1.3 2.1.2 2.0.0
semver 7.5.4 6.3.1 5.7.2
typescript 5.3.3 5.2.2 4.9.5
@types/node 20.10.5 18.19.3
@types/react 18.2.45 17.0.71
@types/express 4.17.21
eslint 8.56.0 7.32.0
prettier 3.1.1 2.8.8
jest 29.7.0 27.5.1
@babel/core 7.23.6 7.22.20
@babel/code-frame 7.23.5 7.22.13
@babel/highlight 7.23.4 7.22.20
@babel/parser 7.23.6 7.22.16
@babel/types 7.23.6 7.22.19
@babel/traverse 7.23.6
@babel/generator 7.23.6
@babel/helper-plugin-utils 7.22.5
webpack 5.89.0 4.47.0
webpack-cli 5.1.4
vite 5.0.10 4.5.1
esbuild 0.19.10 0.18.20
rollup 4.9.1 3.29.4
axios 1.6.2 0.27.2
follow-redirects 1.15.3
form-data 4.0.0 3.0.1
asynckit 0.4.0
combined-stream 1.0.8
delayed-stream 1.0.0
mime-types 2.1.35
mime-db 1.52.0
uuid 9.0.1 8.3.2 3.4.0
dotenv 16.3.1 8.6.0
yargs 17.7.2 16.2.0
yargs-parser 21.1.1 20.2.9
cliui 8.0.1 7.0.4
string-width 4.2.3 5.1.2
strip-ansi 6.0.1 7.1.0
ansi-regex 5.0.1 6.0.1
ansi-styles 4.3.0 6.2.1 3.2.1
wrap-ansi 7.0.0 8.1.0
emoji-regex 8.0.0 9.2.2
is-fullwidth-code-point 3.0.0
color-convert 2.0.1 1.9.3
color-name 1.1.4 1.1.3
supports-color 7.2.0 5.5.0
has-flag 4.0.0 3.0.0
escape-string-regexp 1.0.5 4.0.0
glob 10.3.10 7.2.3
minimatch 9.0.3 3.1.2
brace-expansion 2.0.1 1.1.11
balanced-match 1.0.2
concat-map 0.0.1
once 1.4.0
wrappy 1.0.2
inflight 1.0.6
inherits 2.0.4 2.0.3
fs.realpath 1.0.0
path-is-absolute 1.0.1
rimraf 5.0.5 3.0.2
mkdirp 3.0.1 1.0.4 0.5.6
minimist 1.2.8
cross-spawn 7.0.3
which 2.0.2 1.3.1
isexe 2.0.0
path-key 3.1.1
shebang-command 2.0.0
shebang-regex 3.0.0
signal-exit 4.1.0 3.0.7
tslib 2.6.2 1.14.1
rxjs 7.8.1 6.6.7
zone.js 0.14.2
@angular/core 17.0.8
@angular/common 17.0.8
vue 3.3.13 2.7.16
@vue/shared 3.3.13
next 14.0.4 13.5.6
@next/env 14.0.4
styled-jsx 5.1.1
postcss 8.4.32 7.0.39
nanoid 3.3.7 5.0.4
picocolors 1.0.0
source-map-js 1.0.2
tailwindcss 3.4.0
autoprefixer 10.4.16
browserslist 4.22.2
caniuse-lite 1.0.30001570
electron-to-chromium 1.4.615
node-releases 2.0.14
update-browserslist-db 1.0.13
escalade 3.1.1
body-parser 1.20.2 1.20.1
bytes 3.1.2 3.0.0
content-type 1.0.5
cookie 0.5.0 0.6.0
cookie-signature 1.0.6
depd 2.0.0 1.1.2
destroy 1.2.0
finalhandler 1.2.0
fresh 0.5.2
http-errors 2.0.0 1.8.1
iconv-lite 0.4.24 0.6.3
safer-buffer 2.1.2
merge-descriptors 1.0.1
methods 1.1.2
on-finished 2.4.1
parseurl 1.3.3
path-to-regexp 0.1.7 6.2.1
proxy-addr 2.0.7
qs 6.11.0 6.11.2
range-parser 1.2.1
raw-body 2.5.2 2.5.1
safe-buffer 5.2.1 5.1.2
send 0.18.0
serve-static 1.15.0
setprototypeof 1.2.0
statuses 2.0.1
type-is 1.6.18
utils-merge 1.0.1
vary 1.1.2
accepts 1.3.8
negotiator 0.6.3
array-flatten 1.1.1
content-disposition 0.5.4
encodeurl 1.0.2
escape-html 1.0.3
etag 1.8.1
forwarded 0.2.0
ipaddr.js 1.9.1
mongoose 8.0.3 6.12.3
mongodb 6.3.0 4.17.2
pg 8.11.3
redis 4.6.12 3.1.2
ioredis 5.3.2
jsonwebtoken 9.0.2 8.5.1
bcrypt 5.1.1
passport 0.7.0 0.6.0
cors 2.8.5
helmet 7.1.0 4.6.0
morgan 1.10.0
winston 3.11.0
pino 8.17.1
zod 3.22.4
joi 17.11.0
date-fns 3.0.6 2.30.0
dayjs 1.11.10
moment 2.29.4
ws 8.15.1 7.5.9
socket.io 4.7.2
graphql 16.8.1 15.8.0
@apollo/client 3.8.8
@reduxjs/toolkit 2.0.1 1.9.7
redux 5.0.0 4.2.1
react-redux 9.0.4 8.1.3
react-router-dom 6.21.1 5.3.4
@testing-library/react 14.1.2
@testing-library/jest-dom 6.1.6
vitest 1.1.0 0.34.6
mocha 10.2.0
chai 4.3.10
sinon 17.0.1
supertest 6.3.3
nodemon 3.0.2 2.0.22
ts-node 10.9.2
@typescript-eslint/parser 6.16.0 5.62.0
@typescript-eslint/eslint-plugin 6.16.0 5.62.0
eslint-config-prettier 9.1.0
eslint-plugin-react 7.33.2
husky 8.0.3
lint-staged 15.2.0
sass 1.69.5
classnames 2.5.1
clsx 2.0.0
@emotion/react 11.11.3
@mui/material 5.15.2
lucide-react 0.303.0
framer-motion 10.16.16
@aws-sdk/client-s3 3.478.0
@smithy/types 2.7.0
@google-cloud/storage 7.7.0
firebase 10.7.1
stripe 14.9.0
@sentry/node 7.91.0
@sentry/browser 7.91.0
@octokit/rest 20.0.2
@octokit/core 5.0.2
undici 6.2.1 5.28.2
node-fetch 3.3.2 2.7.0
whatwg-url 5.0.0
tr46 0.0.3
webidl-conversions 3.0.1
punycode 2.3.1
js-tokens 4.0.0
loose-envify 1.4.0
scheduler 0.23.0
object-assign 4.1.1
prop-types 15.8.1
react-is 18.2.0 16.13.1
"""
)

#: Packages usually installed as devDependencies.
NPM_DEV = frozenset(
    """typescript @types/node @types/react @types/express eslint prettier jest webpack webpack-cli vite
    esbuild rollup vitest mocha chai sinon supertest nodemon ts-node @typescript-eslint/parser
    @typescript-eslint/eslint-plugin eslint-config-prettier eslint-plugin-react husky lint-staged sass
    @testing-library/react @testing-library/jest-dom @babel/core""".split()
)

PYPI = _table(
    """
requests 2.31.0 2.28.2
urllib3 2.1.0 1.26.18
certifi 2023.11.17
idna 3.6
charset-normalizer 3.3.2
flask 3.0.0 2.3.3
werkzeug 3.0.1
jinja2 3.1.2
markupsafe 2.1.3
itsdangerous 2.1.2
click 8.1.7
blinker 1.7.0
django 5.0 4.2.8
asgiref 3.7.2
sqlparse 0.4.4
fastapi 0.108.0
pydantic 2.5.3 1.10.13
pydantic-core 2.14.6
typing-extensions 4.9.0
annotated-types 0.6.0
starlette 0.32.0
anyio 4.2.0
sniffio 1.3.0
uvicorn 0.25.0
h11 0.14.0
httpx 0.26.0
httpcore 1.0.2
sqlalchemy 2.0.23
greenlet 3.0.3
alembic 1.13.1
mako 1.3.0
numpy 1.26.2
pandas 2.1.4
python-dateutil 2.8.2
six 1.16.0
pytz 2023.3.post1
tzdata 2023.4
boto3 1.34.7
botocore 1.34.7
jmespath 1.0.1
s3transfer 0.10.0
pyyaml 6.0.1
celery 5.3.6
redis 5.0.1
psycopg2-binary 2.9.9
gunicorn 21.2.0
packaging 23.2
pytest 7.4.3
pluggy 1.3.0
iniconfig 2.0.0
black 23.12.1
mypy 1.8.0
ruff 0.1.9
coverage 7.4.0
attrs 23.1.0
rich 13.7.0
pygments 2.17.2
markdown-it-py 3.0.0
mdurl 0.1.2
cryptography 41.0.7
cffi 1.16.0
pycparser 2.21
"""
)

GO = _table(
    """
github.com/gin-gonic/gin v1.9.1
github.com/gorilla/mux v1.8.1
github.com/spf13/cobra v1.8.0
github.com/spf13/pflag v1.0.5
github.com/spf13/viper v1.18.2
github.com/stretchr/testify v1.8.4
github.com/davecgh/go-spew v1.1.1
github.com/pmezard/go-difflib v1.0.0
gopkg.in/yaml.v3 v3.0.1
github.com/google/uuid v1.5.0
github.com/sirupsen/logrus v1.9.3
go.uber.org/zap v1.26.0
go.uber.org/multierr v1.11.0
golang.org/x/net v0.19.0
golang.org/x/sys v0.15.0
golang.org/x/text v0.14.0
golang.org/x/crypto v0.17.0
golang.org/x/sync v0.5.0
google.golang.org/grpc v1.60.1
google.golang.org/protobuf v1.32.0
github.com/prometheus/client_golang v1.18.0
github.com/jackc/pgx/v5 v5.5.1
github.com/redis/go-redis/v9 v9.3.1
github.com/aws/aws-sdk-go-v2 v1.24.0
github.com/go-chi/chi/v5 v5.0.11
github.com/labstack/echo/v4 v4.11.4
github.com/golang-jwt/jwt/v5 v5.2.0
github.com/rs/zerolog v1.31.0
github.com/mattn/go-isatty v0.0.20
"""
)

CARGO = _table(
    """
serde 1.0.193
serde_derive 1.0.193
serde_json 1.0.108
tokio 1.35.1
tokio-macros 2.2.0
anyhow 1.0.77
thiserror 1.0.52
clap 4.4.12
clap_builder 4.4.12
clap_derive 4.4.7
clap_lex 0.6.0
proc-macro2 1.0.71
quote 1.0.33
syn 2.0.43
unicode-ident 1.0.12
itoa 1.0.10
ryu 1.0.16
memchr 2.7.1
regex 1.10.2
regex-syntax 0.8.2
regex-automata 0.4.3
aho-corasick 1.1.2
log 0.4.20
tracing 0.1.40
tracing-core 0.1.32
once_cell 1.19.0
libc 0.2.151
bytes 1.5.0
pin-project-lite 0.2.13
mio 0.8.10
reqwest 0.11.23
hyper 0.14.28
futures 0.3.30
rand 0.8.5
cfg-if 1.0.0
"""
)

GEMS = _table(
    """
rails 7.1.2
actionpack 7.1.2
actionview 7.1.2
activesupport 7.1.2
activerecord 7.1.2
activemodel 7.1.2
railties 7.1.2
rack 3.0.8
rack-test 2.1.0
rake 13.1.0
thor 1.3.0
zeitwerk 2.6.12
concurrent-ruby 1.2.2
i18n 1.14.1
tzinfo 2.0.6
minitest 5.20.0
nokogiri 1.15.5
puma 6.4.0
nio4r 2.7.0
pg 1.5.4
sidekiq 7.2.0
redis-client 0.19.1
rspec 3.12.0
rspec-core 3.12.2
builder 3.2.4
erubi 1.12.0
loofah 2.22.0
crass 1.0.6
mini_portile2 2.8.5
racc 1.7.3
sinatra 3.1.0
mustermann 3.0.0
tilt 2.3.0
"""
)

COMPOSER = _table(
    """
monolog/monolog 3.5.0
psr/log 3.0.0
symfony/console v6.4.1
symfony/http-foundation v6.4.0
symfony/polyfill-mbstring v1.28.0
symfony/polyfill-ctype v1.28.0
symfony/deprecation-contracts v3.4.0
guzzlehttp/guzzle 7.8.1
guzzlehttp/psr7 2.6.2
guzzlehttp/promises 2.0.2
psr/http-message 2.0
psr/http-client 1.0.3
psr/container 2.0.2
laravel/framework v10.38.2
nesbot/carbon 2.72.1
doctrine/inflector 2.0.8
vlucas/phpdotenv v5.6.0
phpunit/phpunit 10.5.5
ramsey/uuid 4.7.5
brick/math 0.11.0
league/flysystem 3.23.0
twig/twig v3.8.0
"""
)
