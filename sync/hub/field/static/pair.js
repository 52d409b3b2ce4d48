// Pairing: the one-time token from the link's fragment, a platform passkey, the phone remembered.
"use strict";

(async () => {
  fillTexts();
  const token = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);  // the token leaves the address bar at once
  const button = document.getElementById("pair");
  let options;
  try {
    options = await call("POST", "/v1/field/pair/options", { token });
  } catch (error) {
    setStatus("refused", error.message);
    return;
  }
  document.getElementById("who").textContent = t("pair_for")(options.name, options.employee_id);
  button.disabled = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const credential = await navigator.credentials.create({ publicKey: {
        rp: { id: location.hostname, name: "Branch kiosk hub" },
        user: { id: fromB64url(options.user_id), name: options.employee_id, displayName: options.name },
        challenge: fromB64url(options.challenge),
        pubKeyCredParams: [{ type: "public-key", alg: -7 }],
        authenticatorSelection: { authenticatorAttachment: "platform", residentKey: "required",
                                  userVerification: "required" },
        attestation: "none", timeout: 60000,
      } });
      const paired = await call("POST", "/v1/field/pair/finish", {
        token, client_data_json: b64url(credential.response.clientDataJSON),
        attestation_object: b64url(credential.response.attestationObject),
        label: (navigator.userAgentData && navigator.userAgentData.platform) || "",
      });
      localStorage.setItem("field.device", paired.device_id);
      localStorage.setItem("field.credential", paired.credential_id);
      setStatus("ok", t("paired"));
      document.getElementById("next").hidden = false;
    } catch (error) {
      setStatus("refused", error.message);
      button.disabled = false;
    }
  });
})();
