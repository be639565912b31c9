// oidc-provider as the OIDC bench's peer (bench/src/oidc.rs): one
// confidential client allowed the code, refresh and client_credentials
// grants, ES256 ID tokens, PKCE required, refresh tokens rotated on use, and
// an interaction endpoint that signs the bench's one user in and grants the
// scopes at once (a stand-in for a login page, run once per bench client).
// Its codes, sessions and tokens live in memory (the library's default
// adapter), where Signet's are durable: the bench says so next to the
// figures.
//
// Environment: PORT (required), CLIENT_ID, CLIENT_SECRET, REDIRECT_URI.
// Prints "ready <issuer>" once listening.
import { generateKeyPairSync } from "node:crypto";
import http from "node:http";
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
if (!port) throw new Error("PORT is required");
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.CLIENT_ID || "bench";
const clientSecret = process.env.CLIENT_SECRET || "bench-secret-0123456789abcdef0123456789";
const redirectUri = process.env.REDIRECT_URI || "https://rp.example.com/cb";
const ACCOUNT = "bench-user";

const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwk = { ...privateKey.export({ format: "jwk" }), use: "sig", alg: "ES256", kid: "bench-es256" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token", "client_credentials"],
      response_types: ["code"],
      id_token_signed_response_alg: "ES256",
      scope: "openid email offline_access",
    },
  ],
  jwks: { keys: [jwk] },
  scopes: ["openid", "email", "offline_access"],
  claims: { openid: ["sub"], email: ["email", "email_verified"] },
  findAccount: async (_ctx, sub) => ({
    accountId: sub,
    claims: async () => ({ sub, email: "ada@example.com", email_verified: true }),
  }),
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
  },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: ["signet-bench-cookie-key-0123456789"] },
});

// Grants the scopes asked for and signs ACCOUNT in: the bench's login page.
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const clientId = details.params.client_id;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: ACCOUNT, clientId });
  grant.addOIDCScope("openid email offline_access");
  const grantId = await grant.save();
  await provider.interactionFinished(
    req,
    res,
    { login: { accountId: ACCOUNT }, consent: { grantId } },
    { mergeWithLastSubmission: false },
  );
}

const callback = provider.callback();
http
  .createServer((req, res) => {
    if (req.url.startsWith("/interaction/")) {
      interaction(req, res).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
      return;
    }
    callback(req, res);
  })
  .listen(port, "127.0.0.1", () => console.log(`ready ${issuer}`));
