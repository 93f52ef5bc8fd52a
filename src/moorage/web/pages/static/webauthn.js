// Security keys (WebAuthn) on the pages that offer one; every other page runs no script.
// A form marked data-webauthn="create" (enrol) or "get" (sign in, confirm) carries the
// server's options as JSON in data-options. The key's answer goes, as JSON, into the form's
// hidden factor_credential field, and the form is posted as usual, with its CSRF token.
"use strict";
(function () {
  function toBuffer(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(b64 + "===".slice((b64.length + 3) % 4));
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) { return Object.assign({}, d, { id: toBuffer(d.id) }); });
  }

  function publicKey(mode, options) {
    const o = Object.assign({}, options, { challenge: toBuffer(options.challenge) });
    if (mode === "create") {
      o.user = Object.assign({}, options.user, { id: toBuffer(options.user.id) });
      o.excludeCredentials = descriptors(options.excludeCredentials);
    } else {
      o.allowCredentials = descriptors(options.allowCredentials);
    }
    return o;
  }

  // The JSON the server's webauthn library reads (base64url for every byte string).
  function answer(credential) {
    const r = credential.response;
    const response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      if (typeof r.getTransports === "function") response.transports = r.getTransports();
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      if (r.userHandle) response.userHandle = toBase64url(r.userHandle);
    }
    const out = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: credential.getClientExtensionResults(),
    };
    if (credential.authenticatorAttachment) out.authenticatorAttachment = credential.authenticatorAttachment;
    return JSON.stringify(out);
  }

  function setUp(form) {
    const mode = form.dataset.webauthn;
    const button = form.querySelector("button[type=submit]");
    const status = form.querySelector(".key-status");
    const field = form.querySelector("input[name=factor_credential]");
    const note = form.querySelector(".js-needed");
    if (!button || !status || !field) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      status.textContent = "This browser does not support security keys; use another factor.";
      return;
    }
    let options;
    try {
      options = JSON.parse(form.dataset.options);
    } catch (error) {
      status.textContent = "This page's security-key request is damaged; reload the page.";
      return;
    }
    if (note) note.hidden = true;
    button.disabled = false;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      button.disabled = true;
      status.textContent = "Touch your security key.";
      const request = { publicKey: publicKey(mode, options) };
      const call = mode === "create" ? navigator.credentials.create(request) : navigator.credentials.get(request);
      call.then(function (credential) {
        if (!credential) throw new Error("no answer");
        field.value = answer(credential);
        status.textContent = "Checking the answer.";
        form.submit();  // a plain post: the server answers with the next page
      }).catch(function (error) {
        button.disabled = false;
        status.textContent = "The security key did not answer (" + (error && error.name || "error") +
          "); try again, or use another factor.";
      });
    });
  }

  document.querySelectorAll("form[data-webauthn]").forEach(setUp);
})();
