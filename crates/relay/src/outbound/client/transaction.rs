//! One mail transaction: MAIL, RCPT (pipelined when offered), DATA or BDAT, and the
//! recipients' outcomes.
//!
//! # Standards
//! RFC 5321 §4.5.2 (dot-stuffing), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING), RFC 1870
//! (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN parameters), RFC 8689
//! §4.2.1 (a REQUIRETLS message goes only inside TLS to a server that offers REQUIRETLS,
//! and is passed on with it; otherwise its recipients fail with `5.7.30`).

use postern_queue::{Detail, Outcome, QueuedMessage};
use postern_smtp::DataEncoder;
use postern_smtp::client::Reply;
use postern_smtp::command::BodyType;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{Client, ClientError, Peer};
use crate::outbound::requiretls::next_hop_ready;

/// Recipients' fates after one transaction, in the order given.
pub type TxResult = Vec<Outcome>;

impl Client {
    /// One mail transaction for `rcpts` (indexes into the envelope). `Err` means the
    /// connection failed before any recipient had a final answer; the caller may try
    /// another host.
    pub async fn transaction(
        &mut self,
        msg: &QueuedMessage,
        rcpts: &[usize],
    ) -> Result<TxResult, ClientError> {
        let env = &msg.envelope;
        let needs_utf8 = !rcpts.iter().all(|&i| env.recipients[i].address.is_ascii())
            || matches!(&env.sender, postern_smtp::ReversePath::Address(a) if !a.is_ascii());
        if let Some(why) = self.refusal(msg, needs_utf8) {
            return Ok(vec![Outcome::Permanent(why); rcpts.len()]);
        }
        let mut cmds = self.envelope_commands(msg, rcpts, needs_utf8);
        let use_bdat = self.caps.chunking;
        if !use_bdat {
            cmds.push("DATA".into());
        }
        let replies = self.send_commands(&cmds).await?;
        let said = |r: &Reply, cmd: &str, peer: &Peer| {
            Detail::remote(&peer.host, peer.ip, peer.port, r, Some(cmd))
        };
        let mail_reply = &replies[0];
        if mail_reply.code >= 400 {
            let why = said(mail_reply, "MAIL FROM", &self.peer);
            let o = if mail_reply.code >= 500 {
                Outcome::Permanent(why)
            } else {
                Outcome::Temporary(why)
            };
            if !use_bdat && replies.get(rcpts.len() + 1).is_some_and(|r| r.code == 354) {
                self.send(b".\r\n").await?;
                let t = self.t.data_end;
                let _ = self.reply(t).await?;
            }
            return Ok(vec![o; rcpts.len()]);
        }
        if env.requiretls() {
            tracing::info!(
                queue_id = %env.id,
                "{}: REQUIRETLS passed on to {} (it offered REQUIRETLS inside TLS)",
                env.id,
                self.peer
            );
        }
        let mut out: Vec<Option<Outcome>> = Vec::with_capacity(rcpts.len());
        for k in 0..rcpts.len() {
            let Some(r) = replies.get(k + 1) else {
                out.push(Some(Outcome::Temporary(Detail::local(
                    "4.4.2",
                    "no reply to RCPT TO",
                ))));
                continue;
            };
            out.push(match r.code {
                200..=299 => None,
                400..=499 => Some(Outcome::Temporary(said(r, "RCPT TO", &self.peer))),
                _ => Some(Outcome::Permanent(said(r, "RCPT TO", &self.peer))),
            });
        }
        let accepted = out.iter().filter(|o| o.is_none()).count();
        let final_reply = if accepted == 0 {
            // A server that answers 354 although it accepted no recipient gets an empty
            // message ended at once, so that the session stays in step.
            if !use_bdat && replies.get(rcpts.len() + 1).is_some_and(|r| r.code == 354) {
                self.send(b".\r\n").await?;
                let t = self.t.data_end;
                let _ = self.reply(t).await?;
            }
            None
        } else if use_bdat {
            Some(self.send_bdat(msg).await?)
        } else {
            let data_reply = replies.get(rcpts.len() + 1).cloned();
            match data_reply {
                Some(r) if r.code == 354 => Some(self.send_data(msg).await?),
                Some(r) => Some(r),
                None => {
                    let r = self.command("DATA").await?;
                    if r.code == 354 {
                        Some(self.send_data(msg).await?)
                    } else {
                        Some(r)
                    }
                }
            }
        };
        if let Some(r) = final_reply {
            let o = match r.code {
                // RFC 3461 §5.2.2: without DSN at the next hop, success reports are ours.
                200..=299 if self.caps.dsn => Outcome::Relayed(said(&r, "end of DATA", &self.peer)),
                200..=299 => Outcome::RelayedWithoutDsn(said(&r, "end of DATA", &self.peer)),
                400..=499 => Outcome::Temporary(said(&r, "end of DATA", &self.peer)),
                _ => Outcome::Permanent(said(&r, "end of DATA", &self.peer)),
            };
            for slot in out.iter_mut().filter(|o| o.is_none()) {
                *slot = Some(o.clone());
            }
        }
        Ok(out
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| Outcome::Temporary(Detail::local("4.4.2", "no final reply")))
            })
            .collect())
    }

    /// Why the message cannot go to this server at all (it lacks an extension the
    /// message needs, or the message is over its SIZE limit).
    fn refusal(&self, msg: &QueuedMessage, needs_utf8: bool) -> Option<Detail> {
        let env = &msg.envelope;
        if env.requiretls()
            && let Err(f) = next_hop_ready(self.tls_active(), self.caps.requiretls)
                .and_then(|()| self.hop_auth.check())
        {
            let domain = env
                .recipients
                .first()
                .map(|r| r.address.domain.to_string())
                .unwrap_or_default();
            return Some(crate::detail::local(f.reason(
                &domain,
                &self.peer.host,
                self.peer.ip,
            )));
        }
        if needs_utf8 && !self.caps.smtputf8 {
            let why = format!(
                "5.6.7 host {} does not support SMTPUTF8, which this message's non-ASCII addresses need",
                self.peer
            );
            return Some(crate::detail::local(why));
        }
        if env.body == BodyType::EightBitMime && !self.caps.eight_bit_mime {
            let why = format!(
                "5.6.3 host {} does not support 8BITMIME and the message is 8-bit; Postern does not convert it (RFC 6152)",
                self.peer
            );
            return Some(crate::detail::local(why));
        }
        if let Some(limit) = self.caps.size_limit()
            && msg.body_len > limit
        {
            let why = format!(
                "5.3.4 message size {} exceeds the limit of {limit} octets at host {}",
                msg.body_len, self.peer
            );
            return Some(crate::detail::local(why));
        }
        None
    }

    /// MAIL FROM with the parameters this server takes, and one RCPT TO per recipient.
    fn envelope_commands(
        &self,
        msg: &QueuedMessage,
        rcpts: &[usize],
        needs_utf8: bool,
    ) -> Vec<String> {
        let env = &msg.envelope;
        let mut mail = format!("MAIL FROM:{}", env.sender);
        if self.caps.size_limit().is_some() {
            mail.push_str(&format!(" SIZE={}", msg.body_len));
        }
        if env.body == BodyType::EightBitMime {
            mail.push_str(" BODY=8BITMIME");
        }
        // The client asked for SMTPUTF8 (UTF-8 headers, say): keep asking where offered.
        let utf8_mail = needs_utf8 || (env.smtputf8 && self.caps.smtputf8);
        if utf8_mail {
            mail.push_str(" SMTPUTF8");
        }
        // RFC 3461: pass the DSN requests on to a peer that takes them.
        if self.caps.dsn {
            if let Some(ret) = env.ret {
                mail.push_str(&format!(" RET={}", ret.as_str()));
            }
            if let Some(envid) = &env.envid {
                mail.push_str(&format!(" ENVID={}", envid.as_str()));
            }
        }
        // RFC 8689: pass the demand on (`refusal` made sure the server offered it).
        if env.requiretls() {
            mail.push_str(" REQUIRETLS");
        }
        let mut cmds = vec![mail];
        cmds.extend(rcpts.iter().map(|&i| {
            let r = &env.recipients[i];
            match r.relay_dsn_params(utf8_mail).filter(|_| self.caps.dsn) {
                Some(p) => format!("RCPT TO:<{}> {p}", r.address),
                None => format!("RCPT TO:<{}>", r.address),
            }
        }));
        cmds
    }

    /// Send the commands (pipelined when offered) and collect the replies in order.
    /// Without pipelining, a refused MAIL FROM ends the list.
    async fn send_commands(&mut self, cmds: &[String]) -> Result<Vec<Reply>, ClientError> {
        let mut replies = Vec::with_capacity(cmds.len());
        if self.caps.pipelining {
            let batch: String = cmds.iter().map(|c| format!("{c}\r\n")).collect();
            self.send(batch.as_bytes()).await?;
            for _ in cmds {
                let t = self.t.command;
                replies.push(self.reply(t).await?);
            }
        } else {
            for (k, c) in cmds.iter().enumerate() {
                let r = self.command(c).await?;
                let stop = r.code >= 400 && k == 0;
                replies.push(r);
                if stop {
                    break;
                }
            }
        }
        Ok(replies)
    }

    async fn open_body(
        msg: &QueuedMessage,
    ) -> Result<tokio::io::Take<tokio::fs::File>, ClientError> {
        let mut f =
            tokio::fs::File::open(&msg.path)
                .await
                .map_err(|source| ClientError::QueueOpen {
                    path: msg.path.clone(),
                    source,
                })?;
        f.seek(std::io::SeekFrom::Start(msg.body_offset))
            .await
            .map_err(ClientError::QueueRead)?;
        Ok(f.take(msg.body_len))
    }

    async fn send_data(&mut self, msg: &QueuedMessage) -> Result<Reply, ClientError> {
        let mut body = Self::open_body(msg).await?;
        let mut enc = DataEncoder::new();
        let mut chunk = vec![0u8; 64 << 10];
        let mut out = Vec::with_capacity(70 << 10);
        loop {
            let n = body
                .read(&mut chunk)
                .await
                .map_err(ClientError::QueueRead)?;
            if n == 0 {
                break;
            }
            enc.encode(&chunk[..n], &mut out);
            self.send(&out).await?;
            out.clear();
        }
        enc.finish(&mut out);
        self.send(&out).await?;
        let t = self.t.data_end;
        self.reply(t).await
    }

    async fn send_bdat(&mut self, msg: &QueuedMessage) -> Result<Reply, ClientError> {
        let mut body = Self::open_body(msg).await?;
        let mut enc = DataEncoder::for_bdat();
        let mut chunk = vec![0u8; 1 << 20];
        let mut out = Vec::with_capacity((1 << 20) + 1024);
        loop {
            let n = body
                .read(&mut chunk)
                .await
                .map_err(ClientError::QueueRead)?;
            out.clear();
            let last = n == 0;
            if last {
                enc.finish(&mut out);
            } else {
                enc.encode(&chunk[..n], &mut out);
                if out.is_empty() {
                    continue;
                }
            }
            let head = if last {
                format!("BDAT {} LAST\r\n", out.len())
            } else {
                format!("BDAT {}\r\n", out.len())
            };
            self.send(head.as_bytes()).await?;
            self.send(&out).await?;
            let t = if last {
                self.t.data_end
            } else {
                self.t.command
            };
            let r = self.reply(t).await?;
            if last || r.code >= 400 {
                return Ok(r);
            }
        }
    }
}
