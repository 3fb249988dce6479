"""``plba certs init``: a development CA and the certificates gRPC mTLS and the Kafka SSL listener need."""

from __future__ import annotations

import click

from plba.cli.options import setting_option, settings


@click.group("certs")
def certs_group() -> None:
    """Development certificates for gRPC mutual TLS and the local broker's SASL_SSL listener."""


@certs_group.command("init")
@setting_option("certs_dir", "--out", metavar="DIR")
@click.option(
    "--nodes", default="n1,n2,n3", show_default=True, help="Comma-separated node ids to issue node certificates for"
)
@click.option(
    "--days", type=click.IntRange(1, 3650), default=365, show_default=True, help="Validity of new certificates"
)
@click.option("--force", is_flag=True, help="Issue everything again, with a new CA (old certificates stop working)")
def init_cmd(nodes: str, days: int, force: bool) -> None:
    """Create a development CA and certificates in DIR (idempotent: existing files are kept).

    \b
    DIR/ca.pem, ca-key.pem            the CA (its key only signs; keep it off the nodes)
    DIR/client.pem, client-key.pem    client certificate of the dispatcher and CLI:
                                      DIR is their tls dir (PLBA_TLS_DIR=DIR)
    DIR/<node>/ca.pem, node.pem,      one per node: serverAuth + clientAuth (executors call
              node-key.pem            each other), SANs 127.0.0.1, localhost and the node id;
                                      DIR/<node> is that node's tls dir
    DIR/kafka/broker.p12              PKCS12 keystore of the local broker's SASL_SSL listener
    DIR/kafka/truststore.p12          PKCS12 truststore with the CA
    DIR/kafka/store-password          password of both stores

    Private keys and the store password are written 0600 and never printed. Files that exist
    are kept; missing ones (a new node) are issued with the existing CA. --force starts over
    with a new CA. Kafka clients use DIR/ca.pem (PLBA_KAFKA_SSL_CAFILE); `plba kafka up` with
    PLBA_KAFKA_LOCAL_SECURITY=sasl_ssl uses the stores.
    """
    from plba.certs import CertsError, init, parse_nodes

    s = settings()
    try:
        result = init(s.certs_dir, parse_nodes(nodes), days=days, force=force)
    except CertsError as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"cannot write to {s.certs_dir}: {exc.strerror or exc}") from exc
    for name in result.written:
        click.echo(f"wrote {result.out / name}")
    if result.kept:
        click.echo(f"kept {len(result.kept)} existing file(s) in {result.out} (--force issues everything again)")
    if not result.written:
        click.echo("nothing to do: every certificate is there")
