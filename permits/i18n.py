"""Chinese and English texts: rule messages (with the standard's clause), labels and names.

The Chinese uses GB 30871-2022's own terms. A rule id is the key of everything a rule says;
`docs/permits.md` lists the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Lang(StrEnum):
    ZH = "zh"
    EN = "en"


@dataclass(frozen=True, slots=True)
class RuleText:
    clause: str
    zh: str
    en: str


#: rule id → clause and message templates (``str.format`` with the finding's params).
RULES: Mapping[str, RuleText] = {
    # levels and scope
    "scope.height_below_2m": RuleText(
        "3.8",
        "作业高度 {height_m} m 低于 2 m，不属于高处作业",
        "Height {height_m} m is below 2 m: not work at height",
    ),
    "scope.excavation_shallow": RuleText(
        "3.11",
        "挖掘深度 {depth_m} m 未超过 0.5 m，不属于动土作业",
        "Depth {depth_m} m does not exceed 0.5 m: not an excavation operation",
    ),
    "hot_work.wind": RuleText(
        "5.2.15",
        "五级风以上（含五级）禁止露天动火作业（风力 {wind_force} 级）；确需动火应升级管理",
        "Outdoor hot work at wind force {wind_force} (≥ 5) is forbidden; if unavoidable, declare "
        "it so the level is raised",
    ),
    "hot_work.contradiction": RuleText(
        "5.1.4",
        "运行状态与全部停车、置换、隔离的说明相互矛盾",
        "A running plant cannot also be fully shut down, purged and isolated",
    ),
    "hot_work.outside_hours": RuleText(
        "5.1.1",
        "动火作业只能在申报的每日作业时段 {hours} 内进行（其级别按此时段确定）",
        "Hot work runs only within its declared daily hours {hours} (its level assumed them)",
    ),
    "validity.cap": RuleText(
        "{clause}",
        "作业证有效期 {hours} h 超过 {type} {level} 的上限 {cap_h} h",
        "Validity of {hours} h exceeds the cap of {cap_h} h for {type} {level}",
    ),
    "validity.order": RuleText(
        "4.16", "计划结束时间必须晚于开始时间", "The planned end must be after the planned start"
    ),
    "validity.start_past": RuleText(
        "4.18",
        "计划开始时间 {start} 早于当前时间，作业证不得补填",
        "Planned start {start} is in the past: a permit cannot be filled in after the fact",
    ),
    "validity.not_yet": RuleText(
        "4.16", "作业证尚未到有效期开始时间 {start}", "The permit is not valid before {start}"
    ),
    "validity.elapsed": RuleText(
        "4.16",
        "作业证已于 {end} 超过有效期，应重新办理",
        "The permit's validity ended at {end}: a new permit is needed",
    ),
    "template.field_missing": RuleText(
        "{clause}", "缺少必填项：{field}", "Required field missing: {field}"
    ),
    "template.field_invalid": RuleText(
        "{clause}", "字段 {field} 的值无效：{reason}", "Field {field} is invalid: {reason}"
    ),
    "template.unknown_field": RuleText(
        "—", "模板中没有字段 {field}", "The template has no field {field}"
    ),
    "template.unknown_item": RuleText("—", "未知的{kind}：{item}", "Unknown {kind}: {item}"),
    "workers.trade_missing": RuleText(
        "4.9",
        "至少一名作业人员须持有 {trade} 特种作业操作证",
        "At least one worker must be assigned the certified trade {trade}",
    ),
    "workers.none": RuleText("4.9", "作业证须列出作业人员", "A permit needs at least one worker"),
    "workers.unknown": RuleText("4.9", "作业人员 {worker_id} 不存在", "Unknown worker {worker_id}"),
    "watcher.required": RuleText(
        "4.10",
        "每项特殊作业须指定监护人（{user_id} 不具备监护人角色）",
        "Every special operation needs a watcher ({user_id} does not hold the watcher role)",
    ),
    "watcher.is_worker": RuleText(
        "4.10", "监护人不得同时为作业人员", "The watcher cannot also be a worker on the permit"
    ),
    "linked.host_required": RuleText(
        "10.8",
        "临时用电作业证须关联其所服务的作业证",
        "Temporary electricity must name the permit it feeds",
    ),
    "linked.host_invalid": RuleText(
        "10.8",
        "所服务的作业证 {host} 不在有效状态（{state}）",
        "The permit it feeds, {host}, is not live ({state})",
    ),
    "linked.host_ends_first": RuleText(
        "10.8",
        "临时用电有效期不得超过所服务作业证的结束时间 {end}",
        "Temporary electricity cannot outlast the permit it feeds (ends {end})",
    ),
    "linked.host_ended": RuleText(
        "10.8",
        "所服务的作业证 {host} 已结束，临时用电随之终止",
        "The permit it fed, {host}, ended; the temporary electricity ends with it",
    ),
    # documents and evidence
    "evidence.jsa_required": RuleText(
        "ch. 4",
        "特级、一级动火作业须上传作业危害分析（JSA）文件",
        "特级 and 一级 hot work need a job safety analysis (JSA) file",
    ),
    "evidence.lift_plan_required": RuleText(
        "9.2.1", "一级、二级吊装作业须编制吊装方案", "一级 and 二级 lifting need a lift plan"
    ),
    "evidence.risk_analysis_required": RuleText(
        "B.1 note 3",
        "小于 10 t 的吊装可不办作业证，但须进行作业风险分析",
        "A lift under 10 t may skip the permit but needs a risk analysis file",
    ),
    "evidence.photos": RuleText(
        "SPEC §6",
        "步骤“{step}”需要至少 {need} 张照片，已有 {have} 张",
        "Step '{step}' needs at least {need} photos; {have} uploaded",
    ),
    "evidence.step_unknown": RuleText(
        "SPEC §6", "此作业证没有证据步骤“{step}”", "This permit has no evidence step '{step}'"
    ),
    "evidence.too_large": RuleText(
        "SPEC §6",
        "文件 {size} 字节超过上限 {limit} 字节",
        "File of {size} bytes exceeds the limit of {limit} bytes",
    ),
    "evidence.type": RuleText(
        "SPEC §6",
        "步骤“{step}”不接受此文件类型（{detected}）",
        "Step '{step}' does not accept this file type ({detected})",
    ),
    "evidence.corrupt": RuleText(
        "SPEC §6", "图像文件无法解码：{reason}", "The image does not decode: {reason}"
    ),
    # approvals
    "role.required": RuleText(
        "B.1",
        "{user_id} 不具备执行“{action}”所需的角色（需要：{roles}）",
        "{user_id} lacks a role needed to {action} (needs one of: {roles})",
    ),
    "sod.own_permit": RuleText(
        "SPEC §6",
        "{user_id} 是本作业证的{relation}，不得审批本作业证",
        "{user_id} is the permit's {relation} and cannot approve it",
    ),
    "sod.two_steps": RuleText(
        "SPEC §6",
        "{user_id} 已签署本审批流程的第 {step} 步，不得签署两步",
        "{user_id} already signed step {step} of this route and cannot sign two steps",
    ),
    "sod.acceptance": RuleText(
        "4.15",
        "完工验收不得由作业申请人本人签字",
        "The applicant cannot sign the completion acceptance",
    ),
    "approval.on_site": RuleText(
        "4.11",
        "审批须在作业现场进行：签字位置距作业点 {distance_m} m，超过 {limit_m} m",
        "Approvals are signed at the work site: signed {distance_m} m from the work point "
        "(limit {limit_m} m)",
    ),
    "approval.no_pending_step": RuleText(
        "B.1", "没有待签署的审批步骤", "No route step is waiting for a signature"
    ),
    "approval.reason_required": RuleText("B.1", "驳回须说明理由", "A rejection needs a reason"),
    # fitness (downgrade by the rule engine)
    "worker.unfit": RuleText(
        "4.9",
        "作业人员 {worker_id} 被强制休息（{reason}），恢复前不得进入作业",
        "Worker {worker_id} is on mandatory rest ({reason}) and cannot work until recovered",
    ),
    # certificates
    "certificate.missing": RuleText(
        "4.9",
        "作业人员 {worker_id} 无 {trade} 特种作业操作证",
        "Worker {worker_id} has no {trade} special-operation certificate on file",
    ),
    "certificate.invalid": RuleText(
        "4.9",
        "作业人员 {worker_id} 的 {trade} 证书 {number} 未通过核验：{reason}",
        "Worker {worker_id}'s {trade} certificate {number} failed verification: {reason}",
    ),
    "certificate.unverifiable": RuleText(
        "4.9",
        "作业人员 {worker_id} 的 {trade} 证书 {number} 无法核验：{reason}",
        "Worker {worker_id}'s {trade} certificate {number} could not be verified: {reason}",
    ),
    # gas
    "gas.missing": RuleText(
        "{clause}",
        "作业前须进行气体分析，尚无分析记录",
        "A gas analysis is needed before start; none is recorded",
    ),
    "gas.stale": RuleText(
        "{clause}",
        "最近一次气体分析距现在 {age_min} 分钟，超过 {limit_min} 分钟",
        "The last gas analysis is {age_min} min old (limit {limit_min} min)",
    ),
    "gas.failed": RuleText(
        "{clause}", "最近一次气体分析不合格：{reasons}", "The last gas analysis failed: {reasons}"
    ),
    "gas.retest": RuleText(
        "{clause}",
        "作业中断 {paused_min} 分钟（{why}），恢复前须重新进行气体分析",
        "Work paused {paused_min} min ({why}); a new gas analysis is needed before resuming",
    ),
    "gas.o2_range": RuleText(
        "6.3–6.5",
        "氧含量 {value}% 不在 {low}%–{high}% 范围内",
        "Oxygen {value}% is outside {low}–{high}%",
    ),
    "gas.o2_enriched": RuleText(
        "5.3",
        "富氧环境氧含量 {value}% 超过 23.5%",
        "Oxygen {value}% exceeds 23.5% in oxygen service",
    ),
    "gas.o2_missing": RuleText("6.3–6.5", "未测氧含量", "Oxygen was not measured"),
    "gas.flammable_missing": RuleText(
        "5.3", "未测可燃气体浓度", "No flammable-gas concentration was measured"
    ),
    "gas.flammable": RuleText(
        "5.3",
        "{substance} 浓度 {value}%（体积）超过 {limit}%（爆炸下限 {lel}%）",
        "{substance} at {value}% vol exceeds {limit}% vol (LEL {lel}%)",
    ),
    "gas.toxic": RuleText(
        "6.3–6.5",
        "{substance} 浓度 {value} mg/m³ 超过 GBZ 2.1 限值 {limit} mg/m³",
        "{substance} at {value} mg/m³ exceeds its GBZ 2.1 limit of {limit} mg/m³",
    ),
    "gas.toxic_unknown": RuleText(
        "6.3–6.5",
        "物质表中没有 {substance} 的职业接触限值",
        "No GBZ 2.1 limit is on file for {substance}",
    ),
    "gas.in_future": RuleText(
        "SPEC §6", "采样时间不能晚于当前时间", "The sampling time cannot be in the future"
    ),
    "gas.backfilled": RuleText(
        "SPEC §6",
        "采样 {age_min} 分钟后才记录，超过 {limit_min} 分钟，不得补录",
        "Recorded {age_min} min after sampling (limit {limit_min} min): no back-filling",
    ),
    "gas.monitoring_overdue": RuleText(
        "6.3–6.5",
        "连续监测作业已 {age_min} 分钟无气体记录（上限 {limit_min} 分钟）",
        "No gas reading for {age_min} min on a continuously monitored permit (limit {limit_min})",
    ),
    # check-in
    "checkin.watcher_only": RuleText(
        "4.10", "只有本作业证的监护人可以签到", "Only the permit's watcher can check in"
    ),
    "checkin.missing": RuleText(
        "4.10", "监护人尚未在作业点签到", "The watcher has not checked in at the work point"
    ),
    "checkin.too_far": RuleText(
        "4.10",
        "监护人签到位置距作业点 {distance_m} m，超过 {limit_m} m",
        "The watcher checked in {distance_m} m from the work point (limit {limit_m} m)",
    ),
    "checkin.accuracy": RuleText(
        "4.10",
        "定位精度 {accuracy_m} m 低于要求（≤ {limit_m} m）",
        "GPS accuracy {accuracy_m} m is worse than {limit_m} m",
    ),
    "checkin.stale": RuleText(
        "4.10",
        "监护人签到已过去 {age_min} 分钟（上限 {limit_min} 分钟）",
        "The watcher's check-in is {age_min} min old (limit {limit_min} min)",
    ),
    "checkin.override_reason": RuleText(
        "4.10", "超距签到的放行须说明理由", "Overriding a distant check-in needs a reason"
    ),
    "checkin.not_far": RuleText(
        "4.10", "该签到在范围内，无需放行", "That check-in is within range: nothing to override"
    ),
    # activation and resumption
    "measures.unconfirmed": RuleText(
        "ch. 4", "以下安全措施未确认：{missing}", "Safety measures not confirmed: {missing}"
    ),
    "weather.unknown": RuleText(
        "{clause}",
        "须记录现场气象条件（风力、雾、雪、暴雨）",
        "The site's weather (wind force, fog, snow, rainstorm) must be recorded",
    ),
    "weather.height": RuleText(
        "8.2.6",
        "五级风以上或浓雾等恶劣天气禁止高处作业",
        "No work at height at wind force ≥ 5 or in dense fog",
    ),
    "weather.lifting": RuleText(
        "9.2.4",
        "六级以上大风、大雪、暴雨、大雾等恶劣天气禁止露天吊装",
        "No outdoor lifting at wind force ≥ 6, in heavy snow, rainstorm or dense fog",
    ),
    "weather.hot_work": RuleText(
        "5.2.15",
        "现场风力 {wind_force} 级（≥ 5 级），该动火作业未按大风升级管理",
        "Wind force {wind_force} (≥ 5) on site, and this hot work was not raised for wind",
    ),
    "resume.reconfirm": RuleText(
        "8.2.11",
        "高处作业中断后须重新确认作业环境和安全措施",
        "Work at height needs the environment and measures re-confirmed after any interruption",
    ),
    "resume.watcher_back": RuleText(
        "4.10",
        "监护人离开后，须重新在作业点签到方可恢复",
        "After the watcher left, they must check in again before work resumes",
    ),
    "closure.unconfirmed": RuleText(
        "4.15", "以下完工确认项未完成：{missing}", "Closure checks not confirmed: {missing}"
    ),
    "closure.role": RuleText(
        "4.15",
        "临时用电由配送电单位注销",
        "Temporary electricity is closed by the power-distribution unit",
    ),
    "reason.required": RuleText("SPEC §6", "须说明理由", "A reason is needed"),
    # conflicts (SIMOPS)
    "conflict.hot_work_venting": RuleText(
        "5.2.9",
        "动火作业 {distance_m} m 内有可燃气体排放（{other}），要求 ≥ 30 m",
        "Flammable-gas venting ({other}) {distance_m} m from hot work; 30 m needed",
    ),
    "conflict.hot_work_discharge": RuleText(
        "5.2.9",
        "动火作业 {distance_m} m 内有可燃液体排放（{other}），要求 ≥ 15 m",
        "Flammable-liquid discharge ({other}) {distance_m} m from hot work; 15 m needed",
    ),
    "conflict.hot_work_painting": RuleText(
        "5.2.9",
        "动火作业 {distance_m} m 内有溶剂清洗、喷漆或扫尘（{other}），要求 ≥ 10 m",
        "Solvent cleaning, painting or dust sweeping ({other}) {distance_m} m from hot work; "
        "10 m needed",
    ),
    "conflict.hot_work_tank_dike": RuleText(
        "5.2.8",
        "同一防火堤 {dike} 内动火期间不得脱水或取样（{other}）",
        "No draining or sampling ({other}) in tank dike {dike} during hot work",
    ),
    "conflict.hot_work_blinding": RuleText(
        "7.6",
        "火灾爆炸危险场所盲板抽堵作业（{other}）{distance_m} m 内不得动火，要求 ≥ 30 m",
        "Blinding ({other}) in a fire/explosion area {distance_m} m from hot work; 30 m needed",
    ),
    "conflict.blinding_same_pipe": RuleText(
        "7.10",
        "同一管道 {pipe} 上不得同时进行两个及以上盲板抽堵作业（{other}）",
        "Only one blinding job at a time on pipe {pipe} ({other} is live)",
    ),
    "conflict.confined_space_painting": RuleText(
        "6.7",
        "受限空间 {space} 内动火时不得进行涂装（{other}）",
        "No painting or coating in confined space {space} during hot work ({other})",
    ),
    "conflict.fall_line": RuleText(
        "8.2.8",
        "不得在同一坠落方向上同时进行上下交叉作业（{other}，{distance_m} m）",
        "No work above and below on the same fall line ({other}, {distance_m} m)",
    ),
    "simops.coordinator": RuleText(
        "4.7",
        "{distance_m} m 内有同时进行的作业（{others}），须指定统一协调人",
        "Simultaneous operations within {distance_m} m ({others}) need a named coordinator",
    ),
    # everything else
    "workflow.transition": RuleText(
        "SPEC §6",
        "作业证 {permit} 不能从“{from_label}”转到“{to_label}”",
        "Permit {permit} cannot go from '{from_state}' to '{to_state}'",
    ),
    "content.locked": RuleText(
        "4.18", "作业证提交后不得涂改", "A permit cannot be altered once submitted"
    ),
    "permit.not_found": RuleText("—", "作业证 {key} 不存在", "Permit {key} not found"),
    "actor.unknown": RuleText("—", "无法识别操作人：{user_id}", "Unknown acting user: {user_id}"),
    "site.unknown": RuleText("—", "厂区 {site_id} 不存在", "Unknown site {site_id}"),
}


STATE_LABELS: Mapping[str, tuple[str, str]] = {
    "draft": ("草稿", "draft"),
    "submitted": ("已提交", "submitted"),
    "in_review": ("审批中", "in review"),
    "approved": ("已批准", "approved"),
    "active": ("作业中", "active"),
    "suspended": ("已暂停", "suspended"),
    "completed": ("已验收", "completed"),
    "closed": ("已关闭", "closed"),
    "cancelled": ("已取消", "cancelled"),
    "expired": ("已过期", "expired"),
    "terminated": ("已终止", "terminated"),
}

TYPE_NAMES: Mapping[str, tuple[str, str]] = {
    "DH": ("动火作业", "hot work"),
    "SX": ("受限空间作业", "confined-space entry"),
    "MB": ("盲板抽堵作业", "blinding"),
    "GC": ("高处作业", "work at height"),
    "DZ": ("吊装作业", "lifting"),
    "YD": ("临时用电作业", "temporary electricity"),
    "DT": ("动土作业", "excavation"),
    "DL": ("断路作业", "road breaking"),
}

LEVEL_LABELS: Mapping[str, tuple[str, str]] = {
    "DH:special": ("特级动火", "special-grade hot work"),
    "DH:1": ("一级动火", "grade-1 hot work"),
    "DH:2": ("二级动火", "grade-2 hot work"),
    "GC:I": ("Ⅰ级高处作业", "height grade I"),
    "GC:II": ("Ⅱ级高处作业", "height grade II"),
    "GC:III": ("Ⅲ级高处作业", "height grade III"),
    "GC:IV": ("Ⅳ级高处作业", "height grade IV"),
    "DZ:1": ("一级吊装", "grade-1 lift"),
    "DZ:2": ("二级吊装", "grade-2 lift"),
    "DZ:3": ("三级吊装", "grade-3 lift"),
}

ROLE_LABELS: Mapping[str, tuple[str, str]] = {
    "applicant": ("作业申请人", "applicant"),
    "watcher": ("监护人", "watcher"),
    "analyst": ("分析人", "gas analyst"),
    "post_leader": ("岗位当班班长", "on-shift post leader"),
    "local_unit": ("所在基层单位", "local unit"),
    "safety_dept": ("安全管理部门", "safety department"),
    "specialist_dept": ("专业职能部门", "specialist department"),
    "senior_leader": ("主管领导", "senior leader"),
    "plant_manager": ("厂长或总工程师", "plant manager or chief engineer"),
    "power_unit": ("配送电单位", "power-distribution unit"),
    "cs_water": ("供水单位会签", "water countersign"),
    "cs_power": ("电力单位会签", "power countersign"),
    "cs_steam": ("蒸汽单位会签", "steam countersign"),
    "cs_process": ("工艺单位会签", "process countersign"),
    "cs_equipment": ("设备单位会签", "equipment countersign"),
    "cs_fire": ("消防单位会签", "fire countersign"),
    "cs_safety": ("安全单位会签", "safety countersign"),
    "system": ("系统", "system"),
}

_RELATIONS = {
    "applicant": ("作业申请人", "applicant"),
    "watcher": ("监护人", "watcher"),
    "worker": ("作业人员", "worker"),
}


def negotiate(accept_language: str | None, query_lang: str | None = None) -> Lang:
    """The reply language: ``?lang=`` wins, then the first zh/en in Accept-Language (by q),
    else Chinese (the users are Chinese plants)."""
    if query_lang:
        return Lang.EN if query_lang.lower().startswith("en") else Lang.ZH
    if not accept_language:
        return Lang.ZH
    best: tuple[float, Lang] | None = None
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        tag = tag.strip().lower()
        lang = Lang.ZH if tag.startswith("zh") else Lang.EN if tag.startswith("en") else None
        if lang is not None and q > 0 and (best is None or q > best[0]):
            best = (q, lang)
    return best[1] if best else Lang.ZH


def _pick(pair: tuple[str, str] | None, lang: Lang, fallback: str) -> str:
    if pair is None:
        return fallback
    return pair[0] if lang is Lang.ZH else pair[1]


def state_label(state: str, lang: Lang) -> str:
    return _pick(STATE_LABELS.get(state), lang, state)


def type_name(code: str, lang: Lang) -> str:
    return _pick(TYPE_NAMES.get(code), lang, code)


def level_label(code: str, level: str | None, lang: Lang) -> str | None:
    return None if level is None else _pick(LEVEL_LABELS.get(f"{code}:{level}"), lang, level)


def role_label(role: str, lang: Lang) -> str:
    return _pick(ROLE_LABELS.get(role), lang, role)


def clause_of(rule: str, params: Mapping[str, Any]) -> str:
    """The clause a finding cites (some rules take it from their params)."""
    text = RULES.get(rule)
    if text is None:
        return "—"
    return text.clause.format(**params) if "{" in text.clause else text.clause


def message(rule: str, params: Mapping[str, Any], lang: Lang) -> str:
    """The finding as a sentence in ``lang``; unknown params render as themselves."""
    text = RULES.get(rule)
    if text is None:
        return f"{rule}: {dict(params)}"
    template = text.zh if lang is Lang.ZH else text.en
    values = dict(params)
    if "relation" in values and lang is Lang.ZH:
        values["relation"] = _pick(_RELATIONS.get(str(values["relation"])), lang, "")
    try:
        return template.format_map(_Default(values))
    except (ValueError, IndexError):
        return template


class _Default(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
