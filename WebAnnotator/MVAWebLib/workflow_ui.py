"""Workflow panels of the page (`mva serve --project`): login dialog, queue, case form, review, messages.

The widgets only show state set by workflow_controller.py and call its controller functions; answers and the
review comment go to the server as call arguments.
"""
from trame.widgets import client, html
from trame.widgets.vuetify3 import (
    VAlert,
    VBtn,
    VCard,
    VCardActions,
    VCardText,
    VCardTitle,
    VDialog,
    VRadio,
    VRadioGroup,
    VTextarea,
    VTextField,
)

QUEUE_PARTS = (
    ("mine", "My cases", "Open", "annotate"),
    ("available", "Available", "Claim", "claim"),
    ("to_review", "To review", "Review", "review"),
)


def login_dialog(ctrl):
    """A persistent dialog until someone logs in: the page shows nothing of the project before that."""
    with VDialog(model_value=("workflow_mode && !wf_managed && !wf_user",), persistent=True, max_width=420), VCard():
        VCardTitle("Log in to {{ wf_project || 'the project' }}")
        with VCardText():
            VTextField(v_model=("login_username", ""), label="User name", id="mva-login-user", autocomplete="username")
            VTextField(v_model=("login_password", ""), label="Password", type="password", id="mva-login-password",
                       autocomplete="current-password",
                       keyup_enter=(ctrl.wf_login, "[login_username, login_password]"))
            VAlert(v_if="wf_error", type="error", density="compact", text=("wf_error",), id="mva-login-error")
        with VCardActions():
            VBtn("Log in", click=(ctrl.wf_login, "[login_username, login_password]"), id="mva-login",
                 color="primary", variant="flat")


def account_bar(ctrl):
    """User name, role and logout in the app bar."""
    with html.Div(v_if="workflow_mode && wf_user", classes="d-flex align-center"):
        html.Span("{{ wf_user && wf_user.name }} ({{ wf_user && wf_user.role }}) · {{ wf_project }}",
                  classes="text-caption ml-4", id="mva-user")
        VBtn("Log out", click=ctrl.wf_logout, id="mva-logout", size="small", classes="ml-2", variant="text")


def messages():
    """Information above the views (errors go to the page's snackbar, web_ui.error_snackbar)."""
    VAlert(v_if="workflow_mode && wf_info && !wf_error", type="info", density="compact", text=("wf_info",),
           id="mva-wf-info", classes="ma-1")
    VAlert(v_if="workflow_mode && wf_expiry_warning", type="warning", density="compact",
           text=("wf_expiry_warning",), id="mva-expiry-warning", classes="ma-1")


def unsaved_dialog(ctrl):
    """Opening another case or logging out with unsaved changes: save, discard or stay."""
    with VDialog(model_value=("!!wf_pending",), persistent=True, max_width=460), VCard(id="mva-unsaved"):
        VCardTitle("Unsaved changes")
        VCardText("{{ wf_pending && wf_pending.text }} Save them first?")
        with VCardActions():
            VBtn("Save", click=(ctrl.wf_resolve, "['save']"), color="primary", variant="flat", id="mva-unsaved-save")
            VBtn("Discard", click=(ctrl.wf_resolve, "['discard']"), color="error", id="mva-unsaved-discard")
            VBtn("Cancel", click=(ctrl.wf_resolve, "['cancel']"), id="mva-unsaved-cancel")


def restore_dialog(ctrl):
    """The case has autosaved work of this user (an expired login, a closed browser): restore or discard."""
    with VDialog(model_value=("!!wf_restore",), persistent=True, max_width=460), VCard(id="mva-restore"):
        VCardTitle("Unsaved work found")
        VCardText("{{ wf_restore && wf_restore.text }}")
        with VCardActions():
            VBtn("Restore", click=(ctrl.wf_restore_choice, "['restore']"), color="primary", variant="flat",
                 id="mva-restore-yes")
            VBtn("Discard", click=(ctrl.wf_restore_choice, "['discard']"), id="mva-restore-no")


def before_unload():
    """Closing or leaving the tab with unsaved changes asks first (the server also autosaves when it goes)."""
    from MVAWebLib.workflow_unsaved import BEFORE_UNLOAD_SCRIPT
    client.Script(BEFORE_UNLOAD_SCRIPT)


def redirect():
    """The server sends the page elsewhere (team deployment: back to the login page) by setting `redirect_to`."""
    client.ClientStateChange(value="redirect_to", change="redirect_to && utils.get('location').assign(redirect_to)")


def queue_panel(ctrl):
    with VCard(v_if="workflow_mode && wf_user", variant="flat", id="mva-queue"):
        with VCardTitle(classes="text-subtitle-1 d-flex align-center"):
            html.Span("Case queue")
            VBtn(icon="mdi-refresh", click=ctrl.wf_refresh, size="x-small", variant="text", id="mva-queue-refresh")
        with VCardText(classes="py-1"):
            for part, title, button, mode in QUEUE_PARTS:
                with html.Div(v_if=f"wf_queue.{part}.length", id=f"mva-queue-{part}"):
                    html.Div(title, classes="text-caption font-weight-bold")
                    with html.Div(v_for=f"c in wf_queue.{part}", key="c.id", classes="d-flex align-center"):
                        html.Span("{{ c.name }}", classes="text-body-2")
                        html.Span("{{ c.status }}", classes="text-caption ml-2 text-medium-emphasis")
                        call = (ctrl.wf_claim, "[c.id]") if mode == "claim" else (ctrl.wf_open, f"[c.id, '{mode}']")
                        VBtn(button, click=call, size="x-small", classes="ml-auto", variant="tonal",
                             id=(f"'mva-{mode}-' + c.name",))
            html.Div("Nothing to do in this project.", classes="text-caption",
                     v_if="!wf_queue.mine.length && !wf_queue.available.length && !wf_queue.to_review.length")


def case_panel(ctrl):
    """The open case: its form (editable when annotating), save / submit, or the review decision."""
    with VCard(v_if="workflow_mode && wf_case", variant="flat", id="mva-case-panel"):
        VCardTitle("{{ wf_case.name }} — {{ wf_case.mode === 'review' ? 'review of ' + wf_case.annotator : "
                   "'annotation' }}", classes="text-subtitle-1")
        with VCardText(classes="py-1"):
            html.Div("Reviewer: {{ wf_case.comment }}", v_if="wf_case.comment", classes="text-caption text-warning",
                     id="mva-review-comment-shown")
            with html.Div(v_for="q in form_questions", key="q.key", classes="mb-1"):
                html.Div("{{ q.text }}{{ q.required ? ' *' : '' }}", classes="text-caption")
                readonly = "wf_case.mode === 'review'"
                with VRadioGroup(v_if="q.kind === 'choice' || q.kind === 'yes_no'", v_model="form_answers[q.key]",
                                 inline=True, density="compact", hide_details=True, disabled=(readonly,),
                                 id=("'mva-q-' + q.key",)):
                    VRadio(v_for="choice in (q.kind === 'yes_no' ? ['yes', 'no'] : q.choices)", key="choice",
                           label=("choice",), value=("choice",), id=("'mva-q-' + q.key + '-' + choice",))
                VTextField(v_if="q.kind === 'number' || q.kind === 'text'", v_model="form_answers[q.key]",
                           type=("q.kind === 'number' ? 'number' : 'text'",), density="compact", hide_details=True,
                           disabled=(readonly,), id=("'mva-q-' + q.key",))
            with html.Div(v_if="wf_case.mode === 'annotate'", classes="mt-2"):
                VBtn("Save", click=(ctrl.wf_save, "[form_answers]"), size="small", id="mva-wf-save",
                     classes="mr-2")
                VBtn("Submit for review", click=(ctrl.wf_submit, "[form_answers]"), size="small",
                     color="primary", id="mva-wf-submit")
            with html.Div(v_if="wf_case.mode === 'review'", classes="mt-2"):
                VTextarea(v_model=("review_comment", ""), label="Comment (required to return)", rows=2,
                          density="compact", hide_details=True, id="mva-review-comment")
                VBtn("Accept", click=(ctrl.wf_review, "['accept', review_comment]"), size="small",
                     color="success", id="mva-accept", classes="mr-2 mt-1")
                VBtn("Return", click=(ctrl.wf_review, "['return', review_comment]"), size="small",
                     color="warning", id="mva-return", classes="mt-1")
