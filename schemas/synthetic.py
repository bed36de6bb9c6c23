"""Synthetic, realistic-looking records for demos, tests and benchmarks. No real person or company.

Every generator takes a ``random.Random`` and draws all its randomness from it, and takes the
reference date ``as_of`` as a keyword (no wall clock), so a seed gives the same records on every
machine. Every record passes :func:`schemas.registry.validate_claims` for its type.

What is realistic: USCCs with both GB 32100 / GB 11714 check characters (department 9, category 1:
enterprises; bodies in the ``MA...`` form for entities registered since the 2015 reform, the older
8-digit form before); registration
authorities and addresses in real districts with their GB/T 2260 codes; company names, entity types,
business scopes in the standard wording of the business scope catalogue (许可项目 / 一般项目);
capital in 万元; business terms long-term or 10-50 years; resident ID numbers whose birth date,
gender and check character agree. What is not: the food permit's last (check) digit, whose
algorithm is not public, is drawn at random.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from schemas.resident_id import make_resident_id
from schemas.uscc import ALPHABET, make_uscc

__all__ = [
    "AS_OF",
    "generate_business_licence",
    "generate_food_permit",
    "generate_person",
    "generate_staff_authorisation",
]

#: Default reference date: records are valid on this day.
AS_OF = dt.date(2025, 6, 30)

# (division code, province, city, district); province "" for the four municipalities.
_REGIONS: tuple[tuple[str, str, str, str], ...] = (
    ("310101", "", "上海市", "黄浦区"),
    ("310104", "", "上海市", "徐汇区"),
    ("310105", "", "上海市", "长宁区"),
    ("310106", "", "上海市", "静安区"),
    ("310107", "", "上海市", "普陀区"),
    ("310109", "", "上海市", "虹口区"),
    ("310110", "", "上海市", "杨浦区"),
    ("310112", "", "上海市", "闵行区"),
    ("310113", "", "上海市", "宝山区"),
    ("310114", "", "上海市", "嘉定区"),
    ("310115", "", "上海市", "浦东新区"),
    ("310117", "", "上海市", "松江区"),
    ("310118", "", "上海市", "青浦区"),
    ("310120", "", "上海市", "奉贤区"),
    ("110101", "", "北京市", "东城区"),
    ("110102", "", "北京市", "西城区"),
    ("110105", "", "北京市", "朝阳区"),
    ("110106", "", "北京市", "丰台区"),
    ("110108", "", "北京市", "海淀区"),
    ("110114", "", "北京市", "昌平区"),
    ("120101", "", "天津市", "和平区"),
    ("120116", "", "天津市", "滨海新区"),
    ("500103", "", "重庆市", "渝中区"),
    ("500112", "", "重庆市", "渝北区"),
    ("440103", "广东省", "广州市", "荔湾区"),
    ("440104", "广东省", "广州市", "越秀区"),
    ("440106", "广东省", "广州市", "天河区"),
    ("440111", "广东省", "广州市", "白云区"),
    ("440303", "广东省", "深圳市", "罗湖区"),
    ("440304", "广东省", "深圳市", "福田区"),
    ("440305", "广东省", "深圳市", "南山区"),
    ("440306", "广东省", "深圳市", "宝安区"),
    ("330102", "浙江省", "杭州市", "上城区"),
    ("330105", "浙江省", "杭州市", "拱墅区"),
    ("330106", "浙江省", "杭州市", "西湖区"),
    ("330108", "浙江省", "杭州市", "滨江区"),
    ("330110", "浙江省", "杭州市", "余杭区"),
    ("320102", "江苏省", "南京市", "玄武区"),
    ("320104", "江苏省", "南京市", "秦淮区"),
    ("320105", "江苏省", "南京市", "建邺区"),
    ("320505", "江苏省", "苏州市", "虎丘区"),
    ("320506", "江苏省", "苏州市", "吴中区"),
    ("320508", "江苏省", "苏州市", "姑苏区"),
    ("350102", "福建省", "福州市", "鼓楼区"),
    ("350103", "福建省", "福州市", "台江区"),
    ("350203", "福建省", "厦门市", "思明区"),
    ("350206", "福建省", "厦门市", "湖里区"),
    ("510104", "四川省", "成都市", "锦江区"),
    ("510105", "四川省", "成都市", "青羊区"),
    ("510107", "四川省", "成都市", "武侯区"),
    ("420102", "湖北省", "武汉市", "江岸区"),
    ("420106", "湖北省", "武汉市", "武昌区"),
    ("420111", "湖北省", "武汉市", "洪山区"),
)
_REGION_BY_CODE = {r[0]: r for r in _REGIONS}

_ROADS = (
    "人民路", "中山路", "解放路", "建设路", "文化路", "和平路", "长江路", "黄河路", "科技路",
    "创业路", "新华路", "光明路", "东风路", "迎宾路", "学府路", "滨江大道", "世纪大道",
    "青年路", "幸福路", "工业园路", "金融街", "高新大道", "环城北路", "湖滨路",
)
_TRADE_CHARS = "恒瑞华鑫盛泰达信和安源汇嘉诚宏德远丰博顺金兴通明创新智联天宇佳立晨晟鼎锦睿腾启越蓝卓"
_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
_GIVEN_MALE = (
    "伟", "强", "磊", "军", "勇", "杰", "涛", "明", "超", "刚", "建华", "志强", "晓东", "国庆",
    "建国", "志刚", "永刚", "文杰", "子豪", "浩然", "思远", "俊杰", "晓明", "德华", "振华", "立新",
    "建军", "海涛", "宇航", "一鸣",
)
_GIVEN_FEMALE = (
    "芳", "娜", "敏", "静", "丽", "艳", "娟", "霞", "平", "海燕", "红梅", "丽华", "秀英", "桂英",
    "玉兰", "欣怡", "雨萱", "梓涵", "佳怡", "春梅", "金凤", "晓燕", "婷婷", "雅琴", "慧敏", "思琪",
)

# industry word in the name -> (general items 一般项目, licensed items 许可项目)
_INDUSTRIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("信息科技", ("技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广", "软件开发",
              "信息系统集成服务", "数据处理和存储支持服务", "计算机软硬件及辅助设备零售",
              "信息技术咨询服务"), ()),
    ("网络科技", ("互联网数据服务", "网络技术服务", "软件开发", "广告设计、代理",
              "数字内容制作服务（不含出版发行）"), ("第二类增值电信业务",)),
    ("贸易", ("日用百货销售", "五金产品批发", "电子产品销售", "针纺织品销售", "货物进出口",
            "技术进出口"), ()),
    ("餐饮管理", ("餐饮管理", "外卖递送服务", "食品销售（仅销售预包装食品）", "企业管理咨询"),
             ("餐饮服务", "食品销售")),
    ("食品", ("食用农产品批发", "食用农产品零售", "食品销售（仅销售预包装食品）", "农副产品销售"),
            ("食品销售",)),
    ("建筑工程", ("工程管理服务", "园林绿化工程施工", "住宅水电安装维护服务", "建筑材料销售"),
             ("建设工程施工",)),
    ("物流", ("国内货物运输代理", "普通货物仓储服务（不含危险化学品等需许可审批的项目）", "装卸搬运",
            "供应链管理服务"), ("道路货物运输（不含危险货物）",)),
    ("文化传媒", ("组织文化艺术交流活动", "广告制作", "广告发布", "会议及展览服务",
              "摄影扩印服务"), ()),
    ("生物科技", ("技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广",
              "生物化工产品技术研发", "第一类医疗器械销售", "化妆品零售"), ()),
    ("商务咨询", ("企业管理咨询", "信息咨询服务（不含许可类信息咨询服务）", "市场调查（不含涉外调查）",
              "财务咨询"), ()),
    ("机械设备", ("通用设备制造（不含特种设备制造）", "机械设备销售", "机械设备租赁",
              "普通机械设备安装服务"), ()),
    ("环保科技", ("环保咨询服务", "大气污染治理", "水污染治理", "固体废物治理"), ()),
)
_GENERAL_NOTE = "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"
_LICENSED_NOTE = (
    "（依法须经批准的项目，经相关部门批准后方可开展经营活动，"
    "具体经营项目以相关部门批准文件或许可证件为准）"
)

# entity type, weight, name suffix, is branch, foreign-invested
_ENTITY_TYPES: tuple[tuple[str, int, str, bool, bool], ...] = (
    ("有限责任公司（自然人投资或控股）", 45, "有限公司", False, False),
    ("有限责任公司（自然人独资）", 25, "有限公司", False, False),
    ("其他有限责任公司", 8, "有限公司", False, False),
    ("股份有限公司（非上市、自然人投资或控股）", 7, "股份有限公司", False, False),
    ("有限责任公司（外商投资、非独资）", 5, "有限公司", False, True),
    ("有限责任公司（港澳台法人独资）", 3, "有限公司", False, True),
    ("有限责任公司分公司（自然人投资或控股）", 7, "有限公司", True, False),
)
_CAPITALS = (10, 30, 50, 100, 100, 200, 300, 500, 500, 800, 1000, 2000, 5000)

_FOOD_FORMATS: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("1", "食品销售经营者", 40, ("预包装食品销售（含冷藏冷冻食品）", "散装食品销售（不含冷藏冷冻食品）",
                          "保健食品销售", "特殊医学用途配方食品销售", "婴幼儿配方乳粉销售",
                          "热食类食品制售")),
    ("2", "餐饮服务经营者", 50, ("热食类食品制售", "冷食类食品制售", "生食类食品制售",
                          "糕点类食品制售（含裱花蛋糕）", "自制饮品制售（不含自酿酒）",
                          "预包装食品销售（不含冷藏冷冻食品）")),
    ("3", "集中用餐单位食堂", 10, ("热食类食品制售", "冷食类食品制售", "糕点类食品制售（不含裱花蛋糕）")),
)


def _weighted(rng: random.Random, items: tuple[Any, ...], weight_index: int) -> Any:
    return rng.choices(items, weights=[i[weight_index] for i in items])[0]


def _date_between(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _add_years(d: dt.date, years: int) -> dt.date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _person_name(rng: random.Random, gender: str | None = None) -> str:
    gender = gender or rng.choice(("male", "female"))
    return rng.choice(_SURNAMES) + rng.choice(_GIVEN_MALE if gender == "male" else _GIVEN_FEMALE)


def _authority(region: tuple[str, str, str, str]) -> str:
    _, _, city, district = region
    if city == "深圳市":  # Shenzhen's districts are branches of the city bureau
        return f"深圳市市场监督管理局{district[:-1]}监管局"
    return f"{city}{district}市场监督管理局"


def _address(rng: random.Random, region: tuple[str, str, str, str]) -> str:
    _, province, city, district = region
    street = f"{rng.choice(_ROADS)}{rng.randint(1, 2999)}号"
    unit = rng.choice((
        "",
        f"{rng.randint(1, 12)}幢{rng.randint(1, 28)}{rng.randint(1, 20):02d}室",
        f"{rng.randint(1, 30)}层{rng.randint(1, 40):02d}室",
        f"{rng.choice('ABCDE')}座{rng.randint(101, 2808)}室",
    ))
    return f"{province}{city}{district}{street}{unit}"


def _org_body(rng: random.Random, established: dt.date) -> str:
    # Entities registered since the USCC reform (October 2015) mostly got "MA" + 6 characters;
    # older ones kept their 8-digit organisation code.
    if established >= dt.date(2015, 10, 1) and rng.random() < 0.9:
        return "MA" + "".join(rng.choice(ALPHABET) for _ in range(6))
    return "".join(rng.choice("0123456789") for _ in range(8))


def _scope(rng: random.Random, general: tuple[str, ...], licensed: tuple[str, ...]) -> str:
    parts = []
    if licensed:
        chosen = rng.sample(licensed, rng.randint(1, len(licensed)))
        parts.append("许可项目：" + "；".join(chosen) + "。" + _LICENSED_NOTE)
    chosen = rng.sample(general, rng.randint(2, len(general)))
    parts.append("一般项目：" + "；".join(chosen) + "。" + _GENERAL_NOTE)
    return "".join(parts)


def generate_business_licence(rng: random.Random, *, as_of: dt.date = AS_OF) -> dict[str, Any]:
    """Claims of a plausible enterprise business licence, valid on ``as_of``.

    ``uscc``, ``name`` and ``legal_representative`` at the top level, the register fields in the
    ``registration`` object (schemas/types/business-licence).
    """
    region = rng.choice(_REGIONS)
    industry, general, licensed = rng.choice(_INDUSTRIES)
    entity_type, _, suffix, branch, foreign = _weighted(rng, _ENTITY_TYPES, 1)
    trade = "".join(rng.sample(_TRADE_CHARS, 2))
    city_short = region[2][:-1]
    name = f"{city_short}{trade}{industry}{suffix}"
    if branch:
        name += f"{region[3][:-1]}分公司"
    established = _date_between(rng, dt.date(1998, 1, 1), as_of - dt.timedelta(days=30))
    issued = _date_between(rng, established, as_of)
    if rng.random() < 0.65:
        term = {"from": established.isoformat(), "to": None, "long_term": True}
    else:
        until = _add_years(established, rng.choice((10, 20, 30, 50))) - dt.timedelta(days=1)
        if until < as_of:  # a lapsed term would not be issued; extend it as a renewal would
            until = _add_years(until, 20)
        term = {"from": established.isoformat(), "to": until.isoformat(), "long_term": False}
    uscc = make_uscc(
        department="9", category="1", region=region[0], org_body=_org_body(rng, established)
    )
    legal_representative = _person_name(rng)  # drawn here to keep each seed's records as before
    registration: dict[str, Any] = {"entity_type": entity_type}
    if not branch:  # a branch has no registered capital of its own
        amount = Decimal(rng.choice(_CAPITALS))
        if rng.random() < 0.1:
            amount += Decimal(rng.randint(1, 99)) / 100
        currency = "USD" if foreign and rng.random() < 0.5 else "CNY"
        registration["registered_capital"] = {"amount": str(amount), "currency": currency}
    registration.update({
        "establishment_date": established.isoformat(),
        "business_term": term,
        "business_scope": _scope(rng, general, licensed),
        "domicile": _address(rng, region),
        "registration_authority": _authority(region),
        "issue_date": issued.isoformat(),
    })
    claims: dict[str, Any] = {
        "uscc": uscc,
        "name": name,
        "legal_representative": legal_representative,
        "registration": registration,
    }
    return claims


def generate_food_permit(
    rng: random.Random, licence: dict[str, Any], *, as_of: dt.date = AS_OF
) -> dict[str, Any]:
    """Claims of a food business permit for the operator of ``licence``, valid on ``as_of``.

    The permit runs five years from a date in the last five years; its number carries the business
    format code and the licence's division code.
    """
    code, fmt, _, items = _weighted(rng, _FOOD_FORMATS, 2)
    division = licence["uscc"][2:8]
    region = _REGION_BY_CODE.get(division, rng.choice(_REGIONS))
    earliest = max(
        dt.date.fromisoformat(licence["registration"]["establishment_date"]),
        _add_years(as_of, -5) + dt.timedelta(days=1),
    )
    valid_from = _date_between(rng, earliest, as_of)
    valid_to = _add_years(valid_from, 5) - dt.timedelta(days=1)
    premises = licence["registration"]["domicile"] if rng.random() < 0.7 else _address(rng, region)
    return {
        "permit_number": f"JY{code}{division}{rng.randint(0, 999999):06d}{rng.randint(0, 9)}",
        "uscc": licence["uscc"],
        "operator_name": licence["name"],
        "legal_representative": licence["legal_representative"],
        "business_premises": premises,
        "main_business_format": fmt,
        "business_items": sorted(
            rng.sample(items, rng.randint(1, min(4, len(items)))), key=items.index
        ),
        "valid_from": valid_from.isoformat(),
        "valid_to": valid_to.isoformat(),
        "issuing_authority": _authority(region),
    }


def generate_person(rng: random.Random, *, as_of: dt.date = AS_OF) -> dict[str, Any]:
    """Claims of a natural person aged 18-80 on ``as_of`` with a consistent resident ID number."""
    gender = rng.choice(("male", "female"))
    born = _date_between(rng, _add_years(as_of, -80), _add_years(as_of, -18))
    sequence = rng.randrange(1, 1000, 2) if gender == "male" else rng.randrange(0, 1000, 2)
    id_number = make_resident_id(region=rng.choice(_REGIONS)[0], birthdate=born, sequence=sequence)
    return {
        "name": _person_name(rng, gender),
        "id_number": id_number,
        "birthdate": born.isoformat(),
        "gender": gender,
        "nationality": "CN",
        "age_over_18": _add_years(born, 18) <= as_of,
        "age_over_60": _add_years(born, 60) <= as_of,
    }


def generate_staff_authorisation(
    rng: random.Random,
    licence: dict[str, Any],
    staff: dict[str, Any],
    *,
    as_of: dt.date = AS_OF,
    licence_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Claims of an authorisation of ``staff`` (a person record) by ``licence``'s enterprise.

    ``licence_status`` (``{"idx": ..., "uri": ...}``), when given, is the licence's status list
    entry.
    """
    valid_from = as_of - dt.timedelta(days=rng.randint(0, 30))
    scope: dict[str, Any]
    if rng.random() < 0.4:
        scope = {"all": True}
    else:
        codes = {str(rng.randrange(10**11, 10**12)) for _ in range(rng.randint(1, 5))}
        scope = {"matters": sorted(codes)}
    claims: dict[str, Any] = {
        "enterprise_uscc": licence["uscc"],
        "enterprise_name": licence["name"],
        "staff_name": staff["name"],
        "staff_account": f"wa_{rng.getrandbits(64):016x}",
        "scope": scope,
        "valid_from": valid_from.isoformat(),
        "valid_until": (valid_from + dt.timedelta(days=rng.choice((90, 180, 365)))).isoformat(),
        "granted_by": {"name": licence["legal_representative"], "role": "legal_representative"},
    }
    if licence_status is not None:
        claims["licence_status"] = dict(licence_status)
    return claims
